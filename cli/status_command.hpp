#pragma once

#include <CLI/CLI.hpp>

namespace lanrelay::cli {

// Adds `lanrelay status [HOST[:PORT]] [--json]`: a relay's /-/status on the terminal.
void add_status_command(CLI::App& app);

}  // namespace lanrelay::cli
