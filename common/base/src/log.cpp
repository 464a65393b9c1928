#include "lanrelay/base/log.hpp"

#include "lanrelay/base/redact.hpp"

#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace lanrelay {
namespace {

// Every line, at every level, has the userinfo of its URLs removed (redact.hpp) before it reaches
// stderr: no call site has to remember it. The inner sink does its own locking.
class redacting_sink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit redacting_sink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!has_url_credentials(payload)) {
      inner_->log(msg);
      return;
    }
    const std::string clean = redact_urls(payload);
    spdlog::details::log_msg copy(msg);
    copy.payload = spdlog::string_view_t(clean.data(), clean.size());
    inner_->log(copy);
  }
  void flush_() override { inner_->flush(); }
  void set_pattern_(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter_(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};

}  // namespace

bool init_logging(std::string_view level) {
  auto logger = spdlog::get("lanrelay");
  if (!logger) {
    auto sink = std::make_shared<redacting_sink>(
        std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger = std::make_shared<spdlog::logger>("lanrelay", std::move(sink));
    spdlog::register_logger(logger);
    // journald adds its own timestamp; keep ours for terminals and files.
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    spdlog::set_default_logger(logger);
  }

  const std::string name(level);
  const auto parsed = spdlog::level::from_str(name);
  if (parsed == spdlog::level::off && name != "off") {
    spdlog::set_level(spdlog::level::info);
    return false;
  }
  spdlog::set_level(parsed);
  return true;
}

std::string_view current_log_level() noexcept {
  const auto level = spdlog::get_level();
  if (level == spdlog::level::warn) {
    return "warn";
  }
  const auto name = spdlog::level::to_string_view(level);
  return {name.data(), name.size()};
}

void log_failure(std::string_view what, std::exception_ptr e) {
  if (!e) {
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("event=task_failed task=\"{}\" error=\"{}\"", what, ex.what());
  } catch (...) {
    spdlog::error("event=task_failed task=\"{}\" error=\"unknown exception\"", what);
  }
}

}  // namespace lanrelay
