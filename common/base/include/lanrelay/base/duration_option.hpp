#pragma once

// Duration options for CLI11 command lines (the lanrelay command, lanrelayd, proxyhelperd), with
// the grammar of configuration files (duration.hpp): `--busy-patience 1m` works because
// `busy_patience = "1m"` does. Header-only: users link CLI11 themselves.

#include "lanrelay/base/duration.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace lanrelay {

// A CLI11 validator that refuses what parse_duration refuses, naming the grammar:
//   cmd.add_option("--window", window)->check(duration_validator());
inline CLI::Validator duration_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (!parse_duration(text)) {
          return "'" + text + "' is not " + std::string(duration_grammar_hint) + " (0 needs no unit)";
        }
        return {};
      },
      "DURATION", "duration");
}

}  // namespace lanrelay
