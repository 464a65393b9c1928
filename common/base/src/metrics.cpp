#include "lanrelay/base/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace lanrelay::metrics {
namespace {

bool is_name_char(char c, bool first, bool colon_allowed) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
    return true;
  }
  if (c == ':') {
    return colon_allowed;
  }
  return !first && c >= '0' && c <= '9';
}

std::string_view type_name(metric_type type) noexcept {
  return type == metric_type::counter ? "counter" : "gauge";
}

void check_names(const std::string& name, const std::vector<std::string>& label_names) {
  if (!is_valid_metric_name(name)) {
    throw std::invalid_argument("invalid metric name \"" + name + "\"");
  }
  for (const auto& label : label_names) {
    if (!is_valid_label_name(label)) {
      throw std::invalid_argument("invalid label name \"" + label + "\" for " + name);
    }
    if (std::count(label_names.begin(), label_names.end(), label) > 1) {
      throw std::invalid_argument("label \"" + label + "\" repeated for " + name);
    }
  }
}

}  // namespace

bool is_valid_metric_name(std::string_view name) noexcept {
  if (name.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i], i == 0, true)) {
      return false;
    }
  }
  return true;
}

bool is_valid_label_name(std::string_view name) noexcept {
  if (name.empty() || name.starts_with("__")) {
    return false;  // "__" names are reserved for Prometheus itself
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i], i == 0, false)) {
      return false;
    }
  }
  return true;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) {
    return "NaN";
  }
  if (std::isinf(value)) {
    return value > 0 ? "+Inf" : "-Inf";
  }
  return fmt::format("{}", value);
}

template <typename Metric>
Metric& family<Metric>::with(const label_values& labels) {
  if (labels.size() != label_count_) {
    throw std::invalid_argument("wrong number of label values for a metric family");
  }
  std::lock_guard lock(mutex_);
  auto& child = children_[labels];
  if (!child) {
    child = std::make_unique<Metric>();
  }
  return *child;
}

template <typename Metric>
void family<Metric>::remove(const label_values& labels) {
  std::lock_guard lock(mutex_);
  children_.erase(labels);
}

template <typename Metric>
std::vector<sample> family<Metric>::collect() const {
  std::lock_guard lock(mutex_);
  std::vector<sample> out;
  out.reserve(children_.size());
  for (const auto& [labels, child] : children_) {
    out.push_back({labels, static_cast<double>(child->value())});
  }
  return out;
}

template class family<counter>;
template class family<gauge>;

void registry::add(entry e) {
  check_names(e.name, e.label_names);
  std::lock_guard lock(mutex_);
  for (const auto& existing : entries_) {
    if (existing.name == e.name) {
      throw std::invalid_argument("metric \"" + e.name + "\" registered twice");
    }
  }
  entries_.push_back(std::move(e));
}

counter& registry::add_counter(std::string name, std::string help) {
  auto owned = std::make_shared<counter>();
  auto& ref = *owned;
  add({std::move(name), std::move(help), metric_type::counter, {},
       [c = owned.get()] { return std::vector<sample>{{{}, static_cast<double>(c->value())}}; },
       owned});
  return ref;
}

gauge& registry::add_gauge(std::string name, std::string help) {
  auto owned = std::make_shared<gauge>();
  auto& ref = *owned;
  add({std::move(name), std::move(help), metric_type::gauge, {},
       [g = owned.get()] { return std::vector<sample>{{{}, g->value()}}; }, owned});
  return ref;
}

counter_family& registry::add_counter_family(std::string name, std::string help,
                                             std::vector<std::string> label_names) {
  auto owned = std::make_shared<counter_family>(label_names.size());
  auto& ref = *owned;
  add({std::move(name), std::move(help), metric_type::counter, std::move(label_names),
       [f = owned.get()] { return f->collect(); }, owned});
  return ref;
}

gauge_family& registry::add_gauge_family(std::string name, std::string help,
                                         std::vector<std::string> label_names) {
  auto owned = std::make_shared<gauge_family>(label_names.size());
  auto& ref = *owned;
  add({std::move(name), std::move(help), metric_type::gauge, std::move(label_names),
       [f = owned.get()] { return f->collect(); }, owned});
  return ref;
}

void registry::add_collector(std::string name, std::string help, metric_type type,
                             std::vector<std::string> label_names,
                             std::function<std::vector<sample>()> collect) {
  if (!collect) {
    throw std::invalid_argument("metric \"" + name + "\" has no collector");
  }
  add({std::move(name), std::move(help), type, std::move(label_names), std::move(collect), {}});
}

std::string registry::render() const {
  std::lock_guard lock(mutex_);
  std::vector<const entry*> sorted;
  sorted.reserve(entries_.size());
  for (const auto& e : entries_) {
    sorted.push_back(&e);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const entry* a, const entry* b) { return a->name < b->name; });

  std::string out;
  for (const entry* e : sorted) {
    auto samples = e->collect();
    std::sort(samples.begin(), samples.end(),
              [](const sample& a, const sample& b) { return a.labels < b.labels; });
    out += "# HELP " + e->name + " " + escape_help(e->help) + "\n";
    out += "# TYPE " + e->name + " " + std::string(type_name(e->type)) + "\n";
    for (const auto& s : samples) {
      if (s.labels.size() != e->label_names.size()) {
        throw std::invalid_argument("collector of \"" + e->name +
                                    "\" gave a sample with the wrong number of labels");
      }
      out += e->name;
      if (!s.labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < s.labels.size(); ++i) {
          if (i != 0) {
            out += ',';
          }
          out += e->label_names[i] + "=\"" + escape_label_value(s.labels[i]) + "\"";
        }
        out += '}';
      }
      out += ' ' + format_value(s.value) + '\n';
    }
  }
  return out;
}

}  // namespace lanrelay::metrics
