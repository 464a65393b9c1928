#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace lanrelay::cli {

// Where the commands find the relay's store: --state-dir wins, then --config's [state] dir, then
// the daemon's default. The store lives in <state dir>/cache.
struct store_location {
  std::optional<std::filesystem::path> state_dir;
  std::optional<std::filesystem::path> config_file;
};

// Adds `lanrelay cache add|list|remove|pin|unpin` to `app`.
void add_cache_commands(CLI::App& app, store_location& where);

}  // namespace lanrelay::cli
