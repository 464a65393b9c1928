#pragma once

// The machinery behind each daemon's settings table (lanrelayd: config.cpp; proxyhelperd:
// proxyhelper/src/config.cpp). A daemon lists its settings once — section, key, type, doc,
// validation, and where the value lives — and gets from that list:
//   - the TOML loader, reporting every problem as file:line:column (not only the first),
//   - `--print-default-config` (default_text), a valid TOML document with every doc line,
//   - lists of tables (`[[mirror.source]]`, `[[proxy]]`), each item read with its own table.
//
// Include only from a daemon's config .cpp (internal: toml++ is a large header, and libraries
// that include this one link tomlplusplus PRIVATE themselves). Public types are in
// settings_table.hpp.

#include "lanrelay/base/duration.hpp"
#include "lanrelay/base/settings_table.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace lanrelay::settings {

// What a setting's value looks like in TOML, and how it is checked.
enum class setting_type {
  integer,      // TOML integer within [min, max]
  size,         // byte count: integer, or string with unit ("512MiB", "10GiB")
  duration,     // string with unit ("500ms", "10s", "5m", "1h")
  address,      // IP address literal
  path,         // absolute path string; empty means "derive a default"
  log_level,    // spdlog level name
  boolean,      // true or false
  choice,       // one of a fixed list of strings
  text,         // any string; a check function may restrict it
  string_list,  // array of strings, each passing the check function
};

// A problem as plain text; the loader adds file, line and column.
using apply_result = std::optional<std::string>;

// Pushes a reloaded value into the running daemon; a problem keeps the running value (the
// setting is then reported as needing a restart).
template <typename Target>
using reload_hook = std::function<apply_result(live_hooks&, const Target& next)>;

// One setting of `Target` (a daemon's config, or one item of a list of tables).
template <typename Target>
struct setting {
  std::string_view section;  // "" for keys of a list item
  std::string_view key;
  setting_type type;
  std::string_view doc;
  std::function<apply_result(Target&, const toml::node&)> apply;
  std::function<std::string(const Target&)> show;  // TOML literal of the current value
  bool required = false;                           // list items only: the key must be present
  // Reload (SIGHUP): a reloadable setting takes a new value in a running daemon, through
  // `on_reload` when it has one (else the daemon reads it from its running configuration);
  // any other changed setting keeps its running value (`keep`) until a restart.
  bool reloadable = false;
  reload_hook<Target> on_reload;
  std::function<void(Target& to, const Target& from)> keep;  // copies this setting's value
};

// Gives a factory's setting its `keep` (every factory knows its field).
template <typename Target, typename Field>
setting<Target> with_field(setting<Target> s, Field field) {
  s.keep = [field](Target& to, const Target& from) { field(to) = field(const_cast<Target&>(from)); };
  return s;
}

template <typename Target, typename T>
using field_of = T& (*)(Target&);

// Helpers shared by the factories (settings_table.cpp).
std::string_view toml_type_name(const toml::node& node);
std::string toml_string(std::string_view text);
std::optional<std::uint64_t> parse_size(std::string_view text);
std::string size_text(std::uint64_t bytes);  // "2MiB", "1000B": what parse_size reads back
std::string show_size(std::uint64_t bytes);
std::string show_duration(std::chrono::milliseconds d);
apply_result check_address(std::string_view text);
apply_result check_log_level(std::string_view text);

// Integer settings; `T` is the field's type.
template <typename T, typename Target>
setting<Target> integer_setting(std::string_view section, std::string_view key,
                                std::string_view doc, std::int64_t min, std::int64_t max,
                                field_of<Target, T> field) {
  return with_field(setting<Target>{section, key, setting_type::integer, doc,
          [min, max, field](Target& c, const toml::node& node) -> apply_result {
            const auto* value = node.as_integer();
            if (value == nullptr) {
              return "expected an integer from " + std::to_string(min) + " to " +
                     std::to_string(max) + ", got " + std::string(toml_type_name(node));
            }
            if (value->get() < min || value->get() > max) {
              return std::to_string(value->get()) + " is out of range (" + std::to_string(min) +
                     " to " + std::to_string(max) + ")";
            }
            field(c) = static_cast<T>(value->get());
            return std::nullopt;
          },
          [field](const Target& c) { return std::to_string(field(const_cast<Target&>(c))); }}, field);
}

template <typename Target>
setting<Target> size_setting(std::string_view section, std::string_view key, std::string_view doc,
                             field_of<Target, std::uint64_t> field) {
  return with_field(setting<Target>{section, key, setting_type::size, doc,
          [field](Target& c, const toml::node& node) -> apply_result {
            if (const auto* value = node.as_integer()) {
              if (value->get() < 0) {
                return "a size cannot be negative";
              }
              field(c) = static_cast<std::uint64_t>(value->get());
              return std::nullopt;
            }
            const auto* text = node.as_string();
            const auto bytes = text != nullptr ? parse_size(text->get()) : std::nullopt;
            if (!bytes) {
              return "expected a size such as \"512MiB\" or \"10GiB\" (units B, KiB, MiB, GiB, "
                     "TiB), got " +
                     (text != nullptr ? toml_string(text->get())
                                      : std::string(toml_type_name(node)));
            }
            field(c) = *bytes;
            return std::nullopt;
          },
          [field](const Target& c) { return show_size(field(const_cast<Target&>(c))); }}, field);
}

template <typename Duration, typename Target>
setting<Target> duration_setting(std::string_view section, std::string_view key,
                                 std::string_view doc, std::chrono::milliseconds min,
                                 std::chrono::milliseconds max, field_of<Target, Duration> field) {
  return with_field(setting<Target>{section, key, setting_type::duration, doc,
          [min, max, field](Target& c, const toml::node& node) -> apply_result {
            const auto* text = node.as_string();
            const auto value = text != nullptr ? parse_duration(text->get()) : std::nullopt;
            if (!value) {
              return "expected " + std::string(duration_grammar_hint) + ", got " +
                     (text != nullptr ? toml_string(text->get())
                                      : std::string(toml_type_name(node)));
            }
            if (*value < min || *value > max) {
              return toml_string(text->get()) + " is out of range (" + show_duration(min) +
                     " to " + show_duration(max) + ")";
            }
            if (*value % Duration{1} != std::chrono::milliseconds{0}) {
              return toml_string(text->get()) + " is not a whole number of " +
                     (std::is_same_v<Duration, std::chrono::seconds> ? "seconds" : "milliseconds");
            }
            field(c) = std::chrono::duration_cast<Duration>(*value);
            return std::nullopt;
          },
          [field](const Target& c) { return show_duration(field(const_cast<Target&>(c))); }}, field);
}

// A string setting; `check` (optional) rejects values with a reason. `type` is address,
// log_level or text (address and log_level bring their own check).
template <typename Target>
setting<Target> string_setting(std::string_view section, std::string_view key, setting_type type,
                               std::string_view doc, field_of<Target, std::string> field,
                               std::function<apply_result(std::string_view)> check = {}) {
  if (type == setting_type::address) {
    check = check_address;
  } else if (type == setting_type::log_level) {
    check = check_log_level;
  }
  return with_field(setting<Target>{section, key, type, doc,
          [check, field](Target& c, const toml::node& node) -> apply_result {
            const auto* text = node.as_string();
            if (text == nullptr) {
              return "expected a string, got " + std::string(toml_type_name(node));
            }
            if (check) {
              if (auto problem = check(text->get())) {
                return problem;
              }
            }
            field(c) = text->get();
            return std::nullopt;
          },
          [field](const Target& c) { return toml_string(field(const_cast<Target&>(c))); }}, field);
}

template <typename Target>
setting<Target> bool_setting(std::string_view section, std::string_view key, std::string_view doc,
                             field_of<Target, bool> field) {
  return with_field(setting<Target>{section, key, setting_type::boolean, doc,
          [field](Target& c, const toml::node& node) -> apply_result {
            const auto* value = node.as_boolean();
            if (value == nullptr) {
              return "expected true or false, got " + std::string(toml_type_name(node));
            }
            field(c) = value->get();
            return std::nullopt;
          },
          [field](const Target& c) {
            return std::string(field(const_cast<Target&>(c)) ? "true" : "false");
          }}, field);
}

template <typename Target>
setting<Target> choice_setting(std::string_view section, std::string_view key,
                               std::string_view doc, std::vector<std::string_view> choices,
                               field_of<Target, std::string> field) {
  return with_field(setting<Target>{section, key, setting_type::choice, doc,
          [choices, field](Target& c, const toml::node& node) -> apply_result {
            const auto* text = node.as_string();
            if (text == nullptr ||
                std::find(choices.begin(), choices.end(), text->get()) == choices.end()) {
              std::string list;
              for (auto choice : choices) {
                list += list.empty() ? "" : ", ";
                list += toml_string(choice);
              }
              return "expected one of " + list + ", got " +
                     (text != nullptr ? toml_string(text->get())
                                      : std::string(toml_type_name(node)));
            }
            field(c) = text->get();
            return std::nullopt;
          },
          [field](const Target& c) { return toml_string(field(const_cast<Target&>(c))); }}, field);
}

template <typename Target>
setting<Target> path_setting(std::string_view section, std::string_view key, std::string_view doc,
                             field_of<Target, std::filesystem::path> field) {
  return with_field(setting<Target>{section, key, setting_type::path, doc,
          [field](Target& c, const toml::node& node) -> apply_result {
            const auto* text = node.as_string();
            if (text == nullptr) {
              return "expected a path string, got " + std::string(toml_type_name(node));
            }
            if (!text->get().empty() && !std::filesystem::path(text->get()).is_absolute()) {
              return toml_string(text->get()) + " is not an absolute path";
            }
            field(c) = text->get();
            return std::nullopt;
          },
          [field](const Target& c) {
            return toml_string(field(const_cast<Target&>(c)).string());
          }}, field);
}

// An array of strings, each passing `check` (optional).
template <typename Target>
setting<Target> string_list_setting(std::string_view section, std::string_view key,
                                    std::string_view doc,
                                    field_of<Target, std::vector<std::string>> field,
                                    std::function<apply_result(std::string_view)> check = {}) {
  return with_field(setting<Target>{section, key, setting_type::string_list, doc,
          [check, field](Target& c, const toml::node& node) -> apply_result {
            const auto* array = node.as_array();
            if (array == nullptr) {
              return "expected an array of strings such as [\"a\", \"b\"], got " +
                     std::string(toml_type_name(node));
            }
            std::vector<std::string> values;
            for (const toml::node& element : *array) {
              const auto* text = element.as_string();
              if (text == nullptr) {
                return "expected an array of strings, but one element is " +
                       std::string(toml_type_name(element));
              }
              if (check) {
                if (auto problem = check(text->get())) {
                  return problem;
                }
              }
              values.push_back(text->get());
            }
            field(c) = std::move(values);
            return std::nullopt;
          },
          [field](const Target& c) {
            std::string out = "[";
            for (const auto& value : field(const_cast<Target&>(c))) {
              out += out.size() > 1 ? ", " : "";
              out += toml_string(value);
            }
            return out + "]";
          }}, field);
}

// Marks a setting as reloadable: a changed value is taken by the running daemon, and `hook`
// (a function of the daemon's own hooks type, derived from live_hooks) pushes it into the
// running parts. Without a hook the daemon reads the value from its running configuration.
template <typename Hooks, typename Target>
setting<Target> live(setting<Target> s,
                     std::type_identity_t<apply_result (*)(Hooks&, const Target& next)> hook =
                         nullptr) {
  static_assert(std::is_base_of_v<live_hooks, Hooks>);
  s.reloadable = true;
  if (hook != nullptr) {
    s.on_reload = [hook](live_hooks& hooks, const Target& next) {
      return hook(static_cast<Hooks&>(hooks), next);
    };
  }
  return s;
}

// Marks a list item's setting as one that must be given.
template <typename Target>
setting<Target> required(setting<Target> s) {
  s.required = true;
  return s;
}

// A list of tables such as `[[mirror.source]]` (path {"mirror", "source"}) or `[[proxy]]`
// (path {"proxy"}). Each element is read with `item_settings` (section ""), then `validate`
// checks the item as a whole and against the ones before it (unique names...).
template <typename Config, typename Item>
struct list_of_tables {
  std::vector<std::string_view> path;  // one or two TOML keys
  std::string_view doc;
  std::vector<setting<Item>> item_settings;
  std::vector<Item>& (*items)(Config&);
  // Problems with the item as a whole; `earlier` are the items read before it.
  std::function<apply_result(const Item&, std::span<const Item> earlier)> validate;
  Item example;  // printed, commented out, by default_text
  // Reload, as for a scalar setting: a reloadable list is replaced whole in the running daemon.
  bool reloadable = false;
  reload_hook<Config> on_reload;

  std::string name() const {
    std::string out;
    for (auto part : path) {
      out += out.empty() ? "" : ".";
      out += part;
    }
    return out;
  }
};

// The type-erased form the loader works with.
template <typename Config>
struct list_reader {
  std::vector<std::string_view> path;
  std::string name;
  std::function<void(Config&, const toml::array&, std::string_view file,
                     std::vector<config_diagnostic>&)>
      read;
  std::function<std::string()> example_text;
  bool reloadable = false;
  reload_hook<Config> on_reload;
  std::function<bool(const Config&, const Config&)> equal;
  std::function<void(Config& to, const Config& from)> keep;
};

config_diagnostic diagnostic_at(std::string_view file, const toml::source_region& where,
                                std::string message);

template <typename Item>
std::string known_item_keys(const std::vector<setting<Item>>& table) {
  std::string out;
  for (const auto& s : table) {
    out += out.empty() ? "" : ", ";
    out += s.key;
  }
  return out;
}

// Appended to the doc line of a reloadable setting in default_text (and so in docs/operations.md,
// whose tables deploy/gen-settings-doc.sh generates from it).
inline constexpr std::string_view reloads_note = " Reloads on SIGHUP.";

template <typename Config, typename Item>
list_reader<Config> make_list_reader(list_of_tables<Config, Item> list) {
  list_reader<Config> reader;
  reader.path = list.path;
  reader.name = list.name();
  reader.read = [list](Config& config, const toml::array& array, std::string_view file,
                       std::vector<config_diagnostic>& diagnostics) {
    std::vector<Item>& items = list.items(config);
    items.clear();
    const std::string name = list.name();
    for (const toml::node& element : array) {
      const auto* table = element.as_table();
      if (table == nullptr) {
        diagnostics.push_back(diagnostic_at(
            file, element.source(), "'" + name + "' must be a list of tables: [[" + name + "]]"));
        continue;
      }
      Item item = Item{};
      bool item_ok = true;
      for (const auto& [key, value] : *table) {
        // clang-14 (the fuzz preset) cannot capture a structured binding in a lambda.
        const std::string_view key_text = key.str();
        auto s = std::find_if(list.item_settings.begin(), list.item_settings.end(),
                              [&](const setting<Item>& candidate) { return candidate.key == key_text; });
        if (s == list.item_settings.end()) {
          diagnostics.push_back(diagnostic_at(
              file, key.source(),
              "unknown setting '" + std::string(key.str()) + "' in [[" + name + "]]; known: " +
                  known_item_keys(list.item_settings)));
          item_ok = false;
          continue;
        }
        if (auto problem = s->apply(item, value)) {
          diagnostics.push_back(diagnostic_at(file, value.source(),
                                              name + "." + std::string(s->key) + ": " + *problem));
          item_ok = false;
        }
      }
      for (const auto& s : list.item_settings) {
        if (s.required && !table->contains(s.key)) {
          diagnostics.push_back(diagnostic_at(file, table->source(),
                                              "[[" + name + "]] needs '" + std::string(s.key) + "'"));
          item_ok = false;
        }
      }
      if (item_ok && list.validate) {
        if (auto problem = list.validate(item, std::span<const Item>(items))) {
          diagnostics.push_back(diagnostic_at(file, table->source(), "[[" + name + "]]: " + *problem));
          item_ok = false;
        }
      }
      if (item_ok) {
        items.push_back(std::move(item));
      }
    }
  };
  reader.reloadable = list.reloadable;
  reader.on_reload = list.on_reload;
  reader.equal = [items = list.items](const Config& a, const Config& b) {
    return items(const_cast<Config&>(a)) == items(const_cast<Config&>(b));
  };
  reader.keep = [items = list.items](Config& to, const Config& from) {
    items(to) = items(const_cast<Config&>(from));
  };
  reader.example_text = [list] {
    const std::string note = list.reloadable ? std::string(reloads_note) : std::string();
    std::string out =
        "\n# " + std::string(list.doc) + note + "\n# [[" + list.name() + "]]\n";
    for (const auto& s : list.item_settings) {
      out += "#   " + std::string(s.doc) + (s.required ? " (required)" : "") + "\n";
      out += "# " + std::string(s.key) + " = " + s.show(list.example) + "\n";
    }
    return out;
  };
  return reader;
}

template <typename Config>
struct table {
  std::vector<setting<Config>> scalars;  // in the order they are printed
  std::vector<list_reader<Config>> lists;

  const setting<Config>* find(std::string_view section, std::string_view key) const {
    for (const auto& s : scalars) {
      if (s.section == section && s.key == key) {
        return &s;
      }
    }
    return nullptr;
  }
  const list_reader<Config>* find_list(std::string_view first, std::string_view second) const {
    for (const auto& l : lists) {
      if (l.path.size() == 1 && second.empty() && l.path[0] == first) {
        return &l;
      }
      if (l.path.size() == 2 && l.path[0] == first && l.path[1] == second) {
        return &l;
      }
    }
    return nullptr;
  }
  bool has_section(std::string_view section) const {
    return std::any_of(scalars.begin(), scalars.end(), [&](const auto& s) { return s.section == section; }) ||
           std::any_of(lists.begin(), lists.end(),
                       [&](const auto& l) { return l.path.size() == 2 && l.path[0] == section; });
  }
  std::string known_keys(std::string_view section) const {
    std::string out;
    for (const auto& s : scalars) {
      if (s.section == section) {
        out += out.empty() ? "" : ", ";
        out += s.key;
      }
    }
    for (const auto& l : lists) {
      if (l.path.size() == 2 && l.path[0] == section) {
        out += out.empty() ? "" : ", ";
        out += "[[" + l.name + "]]";
      }
    }
    return out;
  }
  std::string known_sections() const {
    std::string out;
    auto add = [&](std::string_view name) {
      if (out.find(std::string(name) + ",") == std::string::npos &&
          !out.ends_with(std::string(name))) {
        out += out.empty() ? "" : ", ";
        out += name;
      }
    };
    for (const auto& s : scalars) {
      add(s.section);
    }
    for (const auto& l : lists) {
      add(l.path.size() == 1 ? "[[" + l.name + "]]" : std::string(l.path[0]));
    }
    return out;
  }
};

// Reads `toml_text` into `config` (which holds the defaults on entry). Every problem is
// reported, in file order.
template <typename Config>
std::vector<config_diagnostic> parse(const table<Config>& settings, Config& config,
                                     std::string_view toml_text, std::string_view file_name) {
  std::vector<config_diagnostic> diagnostics;
  toml::table root;
  try {
    root = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& err) {
    diagnostics.push_back(diagnostic_at(file_name, err.source(), std::string(err.description())));
    return diagnostics;
  }
  for (const auto& [section_key, section_node] : root) {
    const std::string_view section = section_key.str();
    if (const auto* array = section_node.as_array()) {
      if (const auto* list = settings.find_list(section, "")) {
        list->read(config, *array, file_name, diagnostics);
        continue;
      }
    }
    const auto* section_table = section_node.as_table();
    if (section_table == nullptr) {
      diagnostics.push_back(diagnostic_at(file_name, section_key.source(),
                                          "'" + std::string(section) +
                                              "' must be a [section]; known sections: " +
                                              settings.known_sections()));
      continue;
    }
    if (!settings.has_section(section)) {
      diagnostics.push_back(diagnostic_at(file_name, section_key.source(),
                                          "unknown section [" + std::string(section) +
                                              "]; known sections: " + settings.known_sections()));
      continue;
    }
    for (const auto& [key, value] : *section_table) {
      if (const auto* list = settings.find_list(section, key.str())) {
        if (const auto* array = value.as_array()) {
          list->read(config, *array, file_name, diagnostics);
        } else {
          diagnostics.push_back(diagnostic_at(file_name, key.source(),
                                              "'" + list->name + "' must be a list of tables: [[" +
                                                  list->name + "]]"));
        }
        continue;
      }
      const auto* s = settings.find(section, key.str());
      if (s == nullptr) {
        diagnostics.push_back(diagnostic_at(
            file_name, key.source(),
            "unknown setting '" + std::string(section) + "." + std::string(key.str()) +
                "'; known in [" + std::string(section) + "]: " + settings.known_keys(section)));
        continue;
      }
      if (auto problem = s->apply(config, value)) {
        diagnostics.push_back(diagnostic_at(file_name, value.source(),
                                            std::string(section) + "." + std::string(key.str()) +
                                                ": " + *problem));
      }
    }
  }
  // toml++ iterates keys in sorted order; report in file order.
  std::stable_sort(diagnostics.begin(), diagnostics.end(),
                   [](const config_diagnostic& a, const config_diagnostic& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  return diagnostics;
}

// Every setting with its value in `defaults` and its doc (" Reloads on SIGHUP." after the doc of
// a reloadable one), as a valid TOML document; lists of tables are shown as commented-out
// examples.
template <typename Config>
std::string default_text(const table<Config>& settings, const Config& defaults,
                         std::string_view header) {
  std::string out = std::string(header);
  std::string_view section;
  for (const auto& s : settings.scalars) {
    if (s.section != section) {
      section = s.section;
      out += "\n[" + std::string(section) + "]\n";
    }
    const std::string note = s.reloadable ? std::string(reloads_note) : std::string();
    out += "# " + std::string(s.doc) + note + "\n";
    out += std::string(s.key) + " = " + s.show(defaults) + "\n";
  }
  for (const auto& list : settings.lists) {
    out += list.example_text();
  }
  return out;
}

// ---- reload ----------------------------------------------------------------------------------

// The settings whose values differ between `a` and `b`, as "section.key" in table order; lists
// of tables by their name ("mirror.source", "proxy") after the scalars.
template <typename Config>
std::vector<std::string> changed(const table<Config>& settings, const Config& a, const Config& b) {
  std::vector<std::string> out;
  for (const auto& s : settings.scalars) {
    if (s.show(a) != s.show(b)) {
      out.push_back(std::string(s.section) + "." + std::string(s.key));
    }
  }
  for (const auto& l : settings.lists) {
    if (!l.equal(a, b)) {
      out.push_back(l.name);
    }
  }
  return out;
}

// Whether the setting named "section.key" (or a list's name) is reloadable; unknown names are not.
template <typename Config>
bool is_reloadable(const table<Config>& settings, std::string_view name) {
  for (const auto& s : settings.scalars) {
    const auto dot = name.find('.');
    if (dot != std::string_view::npos && s.section == name.substr(0, dot) &&
        s.key == name.substr(dot + 1)) {
      return s.reloadable;
    }
  }
  for (const auto& l : settings.lists) {
    if (l.name == name) {
      return l.reloadable;
    }
  }
  return false;
}

// The reload decision: each setting that differs between `running` and `next` is applied when
// the table marks it reloadable and needs a restart otherwise. A setting that needs a restart
// gets its running value back in `next`, so that `next` is exactly what will run and what the
// next reload compares against.
template <typename Config>
reload_plan plan_reload(const table<Config>& settings, const Config& running, Config& next) {
  reload_plan plan;
  for (const auto& s : settings.scalars) {
    if (s.show(running) == s.show(next)) {
      continue;
    }
    auto name = std::string(s.section) + "." + std::string(s.key);
    if (s.reloadable) {
      plan.applied.push_back(std::move(name));
    } else {
      s.keep(next, running);
      plan.need_restart.push_back(std::move(name));
    }
  }
  for (const auto& l : settings.lists) {
    if (l.equal(running, next)) {
      continue;
    }
    if (l.reloadable) {
      plan.applied.push_back(l.name);
    } else {
      l.keep(next, running);
      plan.need_restart.push_back(l.name);
    }
  }
  return plan;
}

// Runs the apply hooks of the settings in plan.applied, in table order, with `next`. A hook
// that reports a problem moves its setting to plan.need_restart and puts the running value
// back into `next`. Returns the problems as "section.key: problem".
template <typename Config>
std::vector<std::string> run_reload_hooks(const table<Config>& settings, reload_plan& plan,
                                          const Config& running, Config& next, live_hooks& hooks) {
  std::vector<std::string> problems;
  std::vector<std::string> applied;
  const auto wanted = [&](const std::string& name) {
    return std::find(plan.applied.begin(), plan.applied.end(), name) != plan.applied.end();
  };
  const auto run = [&](const std::string& name, const reload_hook<Config>& hook,
                       const std::function<void(Config&, const Config&)>& keep) {
    if (!wanted(name)) {
      return;
    }
    if (hook) {
      if (auto problem = hook(hooks, next)) {
        keep(next, running);
        plan.need_restart.push_back(name);
        problems.push_back(name + ": " + *problem);
        return;
      }
    }
    applied.push_back(name);
  };
  for (const auto& s : settings.scalars) {
    run(std::string(s.section) + "." + std::string(s.key), s.on_reload, s.keep);
  }
  for (const auto& l : settings.lists) {
    run(l.name, l.on_reload, l.keep);
  }
  plan.applied = std::move(applied);
  return problems;
}

}  // namespace lanrelay::settings
