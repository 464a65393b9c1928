#include "lanrelay/relay/mirror_freshness.hpp"

#include "lanrelay/base/file_io.hpp"
#include "lanrelay/base/version.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace lanrelay::relay {
namespace {

namespace au = activeupdate;
namespace fs = std::filesystem;
namespace json = boost::json;
using sys_clock = std::chrono::system_clock;

constexpr std::int64_t freshness_format = 1;
constexpr std::size_t max_freshness_bytes = 1 << 20;

const std::string* version_in(const component_versions& list, std::string_view component) {
  for (const auto& [name, version] : list) {
    if (name == component) {
      return &version;
    }
  }
  return nullptr;
}

json::value time_value(const std::optional<sys_clock::time_point>& t) {
  if (!t) {
    return nullptr;
  }
  return std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
}

std::optional<sys_clock::time_point> time_of(const json::object& o, std::string_view key) {
  const auto* p = o.if_contains(key);
  if (p == nullptr || !p->is_int64()) {
    return std::nullopt;
  }
  return sys_clock::time_point(std::chrono::seconds(p->as_int64()));
}

}  // namespace

component_versions versions_of(const au::index& doc) {
  component_versions out;
  for (const auto& p : doc.patterns()) {
    out.emplace_back("PATTERN:" + p.id, p.version.to_display());
  }
  for (const auto& e : doc.engines()) {
    out.emplace_back("ENGINE:" + e.id, e.version.to_string());
  }
  return out;
}

bool newer_version(std::string_view component, std::string_view a, std::string_view b) {
  if (component.starts_with("PATTERN:")) {
    const auto x = pattern_version::parse(a);
    const auto y = pattern_version::parse(b);
    return x && y && *x > *y;
  }
  const auto x = dotted_version::parse(a);
  const auto y = dotted_version::parse(b);
  return x && y && *x > *y;
}

bool component_freshness::behind() const {
  if (upstream.empty()) {
    return false;
  }
  return served.empty() || newer_version(component, upstream, served);
}

std::chrono::seconds component_freshness::behind_for(sys_clock::time_point now) const {
  if (!behind() || !upstream_since || *upstream_since > now) {
    return std::chrono::seconds{0};
  }
  return std::chrono::duration_cast<std::chrono::seconds>(now - *upstream_since);
}

std::vector<component_freshness> advance_freshness(const std::vector<component_freshness>& before,
                                                   const component_versions& served,
                                                   const std::optional<component_versions>& upstream,
                                                   sys_clock::time_point now) {
  std::vector<std::string> names;
  const auto add_name = [&](const std::string& n) {
    if (std::find(names.begin(), names.end(), n) == names.end()) {
      names.push_back(n);
    }
  };
  for (const auto& [name, version] : served) {
    add_name(name);
  }
  if (upstream) {
    for (const auto& [name, version] : *upstream) {
      add_name(name);
    }
  } else {
    for (const auto& c : before) {
      if (!c.upstream.empty()) {
        add_name(c.component);
      }
    }
  }
  std::vector<component_freshness> out;
  for (const auto& name : names) {
    const auto prev = std::find_if(before.begin(), before.end(),
                                   [&](const component_freshness& c) { return c.component == name; });
    const bool known = prev != before.end();
    component_freshness c;
    c.component = name;
    const std::string* s = version_in(served, name);
    c.served = s != nullptr ? *s : std::string{};
    if (upstream) {
      const std::string* u = version_in(*upstream, name);
      c.upstream = u != nullptr ? *u : std::string{};
    } else if (known) {
      c.upstream = prev->upstream;
    }
    if (!c.served.empty()) {
      c.served_since = known && prev->served == c.served ? prev->served_since : now;
    }
    if (!c.upstream.empty()) {
      c.upstream_since = known && prev->upstream == c.upstream ? prev->upstream_since : now;
    }
    out.push_back(std::move(c));
  }
  return out;
}

json::array to_json(const std::vector<component_freshness>& list, sys_clock::time_point now) {
  const auto age = [&](const std::optional<sys_clock::time_point>& t) -> json::value {
    if (!t) {
      return nullptr;
    }
    return std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::seconds>(now - *t).count());
  };
  json::array out;
  for (const auto& c : list) {
    out.push_back(json::object{{"component", c.component},
                               {"served", c.served},
                               {"upstream", c.upstream},
                               {"served_since", time_value(c.served_since)},
                               {"upstream_since", time_value(c.upstream_since)},
                               {"served_age_seconds", age(c.served_since)},
                               {"upstream_age_seconds", age(c.upstream_since)},
                               {"behind", c.behind()},
                               {"behind_seconds", c.behind_for(now).count()}});
  }
  return out;
}

std::vector<component_freshness> load_freshness(const fs::path& dir) {
  std::vector<component_freshness> out;
  const auto text = read_small_file(dir / "freshness.json", max_freshness_bytes);
  if (!text) {
    return out;
  }
  boost::system::error_code ec;
  const json::value v = json::parse(*text, ec);
  if (ec || !v.is_object()) {
    return out;
  }
  const auto* format = v.as_object().if_contains("format");
  const auto* list = v.as_object().if_contains("components");
  if (format == nullptr || !format->is_int64() || format->as_int64() != freshness_format ||
      list == nullptr || !list->is_array()) {
    return out;
  }
  for (const auto& e : list->as_array()) {
    if (!e.is_object()) {
      return {};
    }
    const auto& o = e.as_object();
    const auto text_of = [&](std::string_view key) {
      const auto* p = o.if_contains(key);
      return p != nullptr && p->is_string() ? std::string(p->as_string()) : std::string{};
    };
    component_freshness c;
    c.component = text_of("component");
    c.served = text_of("served");
    c.upstream = text_of("upstream");
    c.served_since = time_of(o, "served_since");
    c.upstream_since = time_of(o, "upstream_since");
    if (!c.component.empty()) {
      out.push_back(std::move(c));
    }
  }
  return out;
}

result<void> save_freshness(const fs::path& dir, const std::vector<component_freshness>& list) {
  json::array components;
  for (const auto& c : list) {
    components.push_back(json::object{{"component", c.component},
                                      {"served", c.served},
                                      {"upstream", c.upstream},
                                      {"served_since", time_value(c.served_since)},
                                      {"upstream_since", time_value(c.upstream_since)}});
  }
  const std::string text =
      json::serialize(json::object{{"format", freshness_format}, {"components", components}}) + "\n";
  return write_atomically(dir / "staging" / ".freshness.json.tmp", dir / "freshness.json", text);
}

}  // namespace lanrelay::relay
