#include "lanrelay/agent/segment_memory.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace lanrelay::agent {
namespace {

namespace json = boost::json;

json::object read_entries(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    return {};
  }
  std::ostringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  auto value = json::parse(text.str(), ec);
  if (ec || !value.is_object()) {
    spdlog::warn("event=segment_memory_reset file={} error=\"{}\"", file.string(),
                 ec ? ec.message() : "not an object");
    return {};
  }
  return value.as_object();
}

void write_entries(const std::filesystem::path& file, const json::object& entries) {
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  const auto temp = file.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::trunc);
    out << json::serialize(entries);
    if (!out) {
      spdlog::warn("event=segment_memory_write_error file={}", temp);
      std::filesystem::remove(temp, ec);
      return;
    }
  }
  std::filesystem::rename(temp, file, ec);
  if (ec) {
    spdlog::warn("event=segment_memory_write_error file={} error=\"{}\"", file.string(), ec.message());
    std::filesystem::remove(temp, ec);
  }
}

std::int64_t to_seconds(segment_memory::clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

segment_memory::segment_memory(std::filesystem::path file) : file_(std::move(file)) {}

bool segment_memory::is_silent(std::string_view segment, clock::time_point now) const {
  const auto entries = read_entries(file_);
  const auto* until = entries.if_contains(segment);
  return until != nullptr && until->is_int64() && until->as_int64() > to_seconds(now);
}

void segment_memory::remember_silence(std::string_view segment, clock::time_point until) {
  auto entries = read_entries(file_);
  const auto now = to_seconds(clock::now());
  for (auto it = entries.begin(); it != entries.end();) {
    it = (it->value().is_int64() && it->value().as_int64() > now) ? std::next(it) : entries.erase(it);
  }
  entries[segment] = to_seconds(until);
  write_entries(file_, entries);
}

void segment_memory::forget(std::string_view segment) {
  auto entries = read_entries(file_);
  if (entries.erase(segment) != 0) {
    write_entries(file_, entries);
  }
}

}  // namespace lanrelay::agent
