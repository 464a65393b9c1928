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

// Each entry: {"silent_until": seconds, "answered_until": seconds}, either may be absent. A bare
// number is the format of earlier versions: silent until then.
std::int64_t field(const json::value* entry, std::string_view name) {
  if (entry == nullptr) {
    return 0;
  }
  if (entry->is_int64()) {
    return name == "silent_until" ? entry->as_int64() : 0;
  }
  if (const auto* object = entry->if_object()) {
    if (const auto* v = object->if_contains(name); v != nullptr && v->is_int64()) {
      return v->as_int64();
    }
  }
  return 0;
}

// Rewrites the entry of `segment` with `change` and drops entries whose every time is past.
template <class Change>
void update(const std::filesystem::path& file, std::string_view segment, Change change) {
  auto entries = read_entries(file);
  const auto now = to_seconds(segment_memory::clock::now());
  const auto live = [&](const json::value* entry) {
    return field(entry, "silent_until") > now || field(entry, "answered_until") > now ||
           field(entry, "unicast_until") > now;
  };
  for (auto it = entries.begin(); it != entries.end();) {
    it = live(&it->value()) ? std::next(it) : entries.erase(it);
  }
  json::object entry;
  for (const auto* name : {"silent_until", "answered_until"}) {
    if (const auto v = field(entries.if_contains(segment), name); v > now) {
      entry[name] = v;
    }
  }
  if (const auto* old = entries.if_contains(segment);
      old != nullptr && old->is_object() && field(old, "unicast_until") > now) {
    for (const auto* name : {"unicast_until", "unicast_via", "unicast_relays"}) {
      if (const auto* v = old->as_object().if_contains(name)) {
        entry[name] = *v;
      }
    }
  }
  change(entry);
  entries[segment] = std::move(entry);
  write_entries(file, entries);
}

}  // namespace

segment_memory::segment_memory(std::filesystem::path file) : file_(std::move(file)) {}

bool segment_memory::is_silent(std::string_view segment, clock::time_point now) const {
  const auto entries = read_entries(file_);
  return field(entries.if_contains(segment), "silent_until") > to_seconds(now);
}

void segment_memory::remember_silence(std::string_view segment, clock::time_point now,
                                      clock::time_point until) {
  const auto entries = read_entries(file_);
  if (field(entries.if_contains(segment), "answered_until") > to_seconds(now)) {
    return;  // it answers, just not for this item
  }
  update(file_, segment, [&](json::object& entry) { entry["silent_until"] = to_seconds(until); });
}

void segment_memory::remember_unicast(std::string_view segment, std::string_view via,
                                      const std::vector<std::string>& relays,
                                      clock::time_point until) {
  update(file_, segment, [&](json::object& entry) {
    entry.erase("silent_until");
    entry["unicast_until"] = to_seconds(until);
    entry["unicast_via"] = via;
    json::array list;
    for (const auto& r : relays) {
      list.emplace_back(r);
    }
    entry["unicast_relays"] = std::move(list);
  });
}

std::optional<segment_memory::unicast_relays> segment_memory::unicast(std::string_view segment,
                                                                      clock::time_point now) const {
  const auto entries = read_entries(file_);
  const auto* entry = entries.if_contains(segment);
  if (field(entry, "unicast_until") <= to_seconds(now) || !entry->is_object()) {
    return std::nullopt;
  }
  unicast_relays out;
  if (const auto* via = entry->as_object().if_contains("unicast_via"); via && via->is_string()) {
    out.via = std::string(via->as_string());
  }
  if (const auto* list = entry->as_object().if_contains("unicast_relays");
      list && list->is_array()) {
    for (const auto& r : list->as_array()) {
      if (r.is_string()) {
        out.relays.emplace_back(r.as_string());
      }
    }
  }
  if (out.relays.empty()) {
    return std::nullopt;
  }
  return out;
}

void segment_memory::remember_answer(std::string_view segment, clock::time_point until) {
  update(file_, segment, [&](json::object& entry) {
    entry.erase("silent_until");
    entry["answered_until"] = to_seconds(until);
  });
}

}  // namespace lanrelay::agent
