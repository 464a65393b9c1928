#pragma once

// The bounds on each attempt and on the whole run, as options of `lanrelay fetch` and
// `lanrelay update` (agent/fetch.hpp: attempt_limits, fetch_options::deadline;
// docs/operations.md, "Fetching as an agent").

#include "command_error.hpp"
#include "command_support.hpp"

#include "lanrelay/agent/fetch.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace lanrelay::cli {

struct attempt_options {
  std::string min_rate = "16KiB";
  std::string rate_window = "10s";
  std::string attempt_base = "60s";
  std::string deadline;  // default: the command's own

  void add_to(CLI::App& cmd, std::string_view deadline_default, std::string_view deadline_what) {
    deadline = std::string(deadline_default);
    cmd.add_option("--min-rate", min_rate,
                   "An attempt at a segment holder that receives less than this per second, "
                   "averaged over --rate-window, ends and the next source is tried (bytes, KiB "
                   "or MiB; 0: no floor and no per-attempt deadline)")
        ->capture_default_str();
    cmd.add_option("--rate-window", rate_window, "The window --min-rate is measured over")
        ->check(duration_validator())
        ->capture_default_str();
    cmd.add_option("--attempt-base", attempt_base,
                   "An attempt at a segment holder ends this long after it started plus the "
                   "item's size at --min-rate")
        ->check(duration_validator())
        ->capture_default_str();
    cmd.add_option("--deadline", deadline,
                   std::string(deadline_what) + " gives up after this (e.g. 30m, 1h; 0: never)")
        ->check(duration_validator())
        ->capture_default_str();
  }

  agent::attempt_limits limits() const {
    agent::attempt_limits out;
    const auto rate = parse_bytes(min_rate);
    if (!rate) {
      throw command_error("--min-rate '" + min_rate + "' is not a size such as 16KiB");
    }
    out.min_rate = *rate;
    const auto window = parse_duration_ms(rate_window);
    if (!window || window->count() < 100) {
      throw command_error("--rate-window '" + rate_window +
                          "' is not a duration of at least 100ms such as 10s");
    }
    out.rate_window = *window;
    const auto base = parse_duration_ms(attempt_base);
    if (!base) {
      throw command_error("--attempt-base '" + attempt_base + "' is not a duration such as 60s");
    }
    out.attempt_base = *base;
    return out;
  }

  std::chrono::milliseconds overall() const {
    const auto parsed = parse_duration_ms(deadline);
    if (!parsed) {
      throw command_error("--deadline '" + deadline + "' is not a duration such as 30m or 1h");
    }
    return *parsed;
  }
};

}  // namespace lanrelay::cli
