#include "lanrelay/agent/catalog_memory.hpp"

#include "lanrelay/base/file_io.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <limits>

namespace lanrelay::agent {
namespace {

namespace json = boost::json;

constexpr std::size_t max_file_bytes = 1 << 20;

json::object read_marks(const std::filesystem::path& file) {
  const auto text = read_small_file(file, max_file_bytes);
  if (!text) {
    return {};
  }
  boost::system::error_code ec;
  auto value = json::parse(*text, ec);
  if (ec || !value.is_object()) {
    spdlog::warn("event=catalog_memory_reset file={} error=\"{}\"", file.string(),
                 ec ? ec.message() : "not an object");
    return {};
  }
  return value.as_object();
}

std::int64_t seconds_of(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::int64_t mark_of(const json::object& marks, const public_key& key) {
  const auto* v = marks.if_contains(key.to_string());
  return v != nullptr && v->is_int64() ? v->as_int64() : std::numeric_limits<std::int64_t>::min();
}

}  // namespace

catalog_memory::catalog_memory(std::filesystem::path file) : file_(std::move(file)) {}

bool catalog_memory::admits(const public_key& key,
                            std::chrono::system_clock::time_point issued_at) const {
  return seconds_of(issued_at) >= mark_of(read_marks(file_), key);
}

void catalog_memory::record(const public_key& key, std::chrono::system_clock::time_point issued_at) {
  auto marks = read_marks(file_);
  if (seconds_of(issued_at) <= mark_of(marks, key)) {
    return;
  }
  marks[key.to_string()] = seconds_of(issued_at);
  std::error_code ec;
  std::filesystem::create_directories(file_.parent_path(), ec);
  const auto written = write_atomically(file_.string() + ".tmp." + std::to_string(::getpid()),
                                        file_, json::serialize(marks));
  if (!written) {
    spdlog::warn("event=catalog_memory_write_error file={} error=\"{}\"", file_.string(),
                 written.error().message());
  }
}

}  // namespace lanrelay::agent
