#pragma once

#include <CLI/CLI.hpp>

namespace lanrelay::cli {

// Adds `lanrelay fetch` and `lanrelay discover`: the agent's side of the segment.
void add_agent_commands(CLI::App& app);

// Adds `lanrelay key generate|show`: the site key that signs the relay's catalog.
void add_key_commands(CLI::App& app);

}  // namespace lanrelay::cli
