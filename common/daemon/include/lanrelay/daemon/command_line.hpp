#pragma once

// The command-line options both daemons share, and what they do before a daemon starts:
//   --config FILE            the configuration (TOML); read again on SIGHUP
//   --print-default-config   every setting with its default and doc, then exit 0
//   --check-config FILE      validate a file (every problem, file:line:column), exit 0 or 1
//   --state-dir DIR          overrides state.dir
//   --log-level LEVEL        overrides log.level
// Each daemon adds its own port and address overrides and applies all overrides to what its
// loader read (relay/main.cpp, proxyhelper/main.cpp).

#include "lanrelay/base/settings_table.hpp"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::runtime {

struct standard_options {
  std::optional<std::string> config_file;
  std::optional<std::string> check_file;
  std::optional<std::filesystem::path> state_dir;  // made absolute by add_standard_options
  std::optional<std::string> log_level;
  bool print_default = false;
};

// Adds the five options above to `app`; `config_help` and `state_dir_help` describe them for
// this daemon.
void add_standard_options(CLI::App& app, standard_options& options, std::string_view config_help,
                          std::string_view state_dir_help);

// What --print-default-config prints and --check-config runs for one daemon.
struct config_actions {
  std::function<std::string()> default_text;
  std::function<std::vector<config_diagnostic>(const std::filesystem::path&)> check;
};

// Handles --print-default-config and --check-config: returns the exit code when one of them
// was given (the daemon then exits), nullopt when the daemon should start.
std::optional<int> run_config_actions(const standard_options& options,
                                      const config_actions& actions);

// Prints each diagnostic to stderr; returns whether there were none.
bool report_diagnostics(const std::vector<config_diagnostic>& diagnostics);

// Starts logging at `level` (validated by the loader); prints the problem and returns false for
// an unknown level.
bool start_logging(std::string_view program, const std::string& level);

}  // namespace lanrelay::runtime
