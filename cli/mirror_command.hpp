#pragma once

#include <CLI/CLI.hpp>

namespace lanrelay::cli {

// `lanrelay mirror sync [SOURCE]` ("update now") and `lanrelay mirror status`, through the
// running lanrelayd's /-/mirror endpoints.
void add_mirror_commands(CLI::App& app);

}  // namespace lanrelay::cli
