#pragma once

// A metrics registry rendered in the Prometheus text exposition format (version 0.0.4), shared by
// lanrelayd and proxyhelperd.
//
// Three ways to provide values:
//   - counter / gauge: owned here, updated on the hot path with one relaxed atomic operation;
//   - counter_family / gauge_family: the same, one child per set of label values (created on first
//     use; a child's address stays valid until the registry dies or remove() drops it);
//   - a collector: a function called at scrape time that reads values kept elsewhere (the relay's
//     existing atomic counters, the store's size, mirror states), so nothing is counted twice.
//
// Rendering order is stable: families sorted by name, samples of a family sorted by label values.
// Names are checked when registered (metric [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]*
// not starting with "__"); a bad or duplicate name is a programming error and throws
// std::invalid_argument. Label values and HELP text may hold anything: they are escaped.
//
// Thread safety: every member function may be called from any thread. Registration and render()
// take the registry's mutex; collectors run under it and must not call back into the registry.
// Counters and gauges are lock-free atomics.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::metrics {

enum class metric_type { counter, gauge };

// The content type of render()'s output, for the HTTP response.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

using label_values = std::vector<std::string>;

struct sample {
  label_values labels;  // one value per label name of the family, in the same order
  double value = 0;
};

class counter {
 public:
  void increment(std::uint64_t by = 1) noexcept { value_.fetch_add(by, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class gauge {
 public:
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void add(double by) noexcept { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Children of one labelled family. with() costs a mutex and a map lookup: keep the reference
// when the same labels are used on a hot path.
template <typename Metric>
class family {
 public:
  explicit family(std::size_t label_count) : label_count_(label_count) {}

  // The child for `labels` (one value per label name), created at zero on first use.
  Metric& with(const label_values& labels);
  // Drops a child (a proxy that was removed from the configuration); no-op when absent.
  void remove(const label_values& labels);
  std::vector<sample> collect() const;

 private:
  const std::size_t label_count_;
  mutable std::mutex mutex_;
  std::map<label_values, std::unique_ptr<Metric>> children_;  // guarded by mutex_
};

using counter_family = family<counter>;
using gauge_family = family<gauge>;

class registry {
 public:
  registry() = default;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  counter& add_counter(std::string name, std::string help);
  gauge& add_gauge(std::string name, std::string help);
  counter_family& add_counter_family(std::string name, std::string help,
                                     std::vector<std::string> label_names);
  gauge_family& add_gauge_family(std::string name, std::string help,
                                 std::vector<std::string> label_names);

  // `collect` is called at every render(); each sample must carry one value per label name
  // (a sample with the wrong count is a programming error: render() throws).
  void add_collector(std::string name, std::string help, metric_type type,
                     std::vector<std::string> label_names,
                     std::function<std::vector<sample>()> collect);

  // Every family as "# HELP", "# TYPE" and its samples, families sorted by name.
  std::string render() const;

 private:
  struct entry {
    std::string name;
    std::string help;
    metric_type type;
    std::vector<std::string> label_names;
    std::function<std::vector<sample>()> collect;
    std::shared_ptr<void> owned;  // the counter, gauge or family behind `collect`, if owned here
  };
  void add(entry e);

  mutable std::mutex mutex_;
  std::vector<entry> entries_;  // guarded by mutex_
};

// Exposed for tests and for code that writes exposition text itself.
bool is_valid_metric_name(std::string_view name) noexcept;
bool is_valid_label_name(std::string_view name) noexcept;
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);
// Prometheus spelling of a value: shortest round-trip decimal, "+Inf", "-Inf" or "NaN".
std::string format_value(double value);

}  // namespace lanrelay::metrics
