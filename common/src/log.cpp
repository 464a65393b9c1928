#include "lanrelay/common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

namespace lanrelay {

bool init_logging(std::string_view level) {
  auto logger = spdlog::get("lanrelay");
  if (!logger) {
    logger = spdlog::stderr_logger_mt("lanrelay");
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
