#pragma once

#include <CLI/CLI.hpp>

namespace lanrelay::cli {

// Adds `lanrelay update`: the agent's ActiveUpdate update for one source (agent/au_update.hpp).
void add_update_command(CLI::App& app);

}  // namespace lanrelay::cli
