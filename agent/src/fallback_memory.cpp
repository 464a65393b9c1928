#include "lanrelay/agent/fallback_memory.hpp"

#include "lanrelay/base/file_io.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <array>

namespace lanrelay::agent {
namespace {

namespace json = boost::json;

constexpr std::size_t max_file_bytes = 4096;

using counts = std::array<std::uint16_t, discovery::fallback_reason_count>;

discovery::fallback_reason reason_at(std::size_t index) noexcept {
  return static_cast<discovery::fallback_reason>(index + 1);
}

// Unknown keys and values that are not counts are ignored; counts are clamped.
counts read_counts(const std::filesystem::path& file) {
  counts out{};
  const auto text = read_small_file(file, max_file_bytes);
  if (!text) {
    return out;
  }
  boost::system::error_code ec;
  const auto value = json::parse(*text, ec);
  if (ec || !value.is_object()) {
    spdlog::warn("event=fallback_memory_reset file={} error=\"{}\"", file.string(),
                 ec ? ec.message() : "not an object");
    return out;
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto* v = value.as_object().if_contains(discovery::to_string(reason_at(i)));
    if (v != nullptr && v->is_int64() && v->as_int64() > 0) {
      out[i] = static_cast<std::uint16_t>(
          std::min<std::int64_t>(v->as_int64(), discovery::max_reported_fallbacks));
    }
  }
  return out;
}

void write_counts(const std::filesystem::path& file, const counts& c) {
  json::object o;
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (c[i] > 0) {
      o[discovery::to_string(reason_at(i))] = c[i];
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  const auto written = write_atomically(file.string() + ".tmp." + std::to_string(::getpid()), file,
                                        json::serialize(o));
  if (!written) {
    spdlog::warn("event=fallback_memory_write_error file={} error=\"{}\"", file.string(),
                 written.error().message());
  }
}

}  // namespace

fallback_memory::fallback_memory(std::filesystem::path file) : file_(std::move(file)) {}

void fallback_memory::record(discovery::fallback_reason reason) {
  const auto index = static_cast<std::size_t>(reason) - 1;
  if (index >= discovery::fallback_reason_count) {
    return;
  }
  auto c = read_counts(file_);
  if (c[index] >= discovery::max_reported_fallbacks) {
    return;
  }
  ++c[index];
  write_counts(file_, c);
}

std::vector<discovery::fallback_count> fallback_memory::pending() const {
  const auto c = read_counts(file_);
  std::vector<discovery::fallback_count> out;
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (c[i] > 0) {
      out.push_back({reason_at(i), c[i]});
    }
  }
  return out;
}

void fallback_memory::settle(const std::vector<discovery::fallback_count>& reported) {
  if (reported.empty()) {
    return;
  }
  auto c = read_counts(file_);
  for (const auto& r : reported) {
    const auto index = static_cast<std::size_t>(r.reason) - 1;
    if (index < c.size()) {
      c[index] = c[index] > r.count ? static_cast<std::uint16_t>(c[index] - r.count) : 0;
    }
  }
  write_counts(file_, c);
}

}  // namespace lanrelay::agent
