#pragma once

#include "lanrelay/base/state_dir.hpp"
#include "lanrelay/relay/config.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <stdexcept>

namespace lanrelay::cli {

// Thrown to end a command with a message for the administrator and exit status 1.
struct command_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Runs a command's body, turning a command_error into one line on stderr and exit status 1.
template <typename F>
void run_guarded(F&& body) {
  try {
    body();
  } catch (const command_error& e) {
    fmt::print(stderr, "lanrelay: {}\n", e.what());
    throw CLI::RuntimeError(1);
  } catch (const state_dir_refused& e) {
    fmt::print(stderr, "lanrelay: {}\n", e.what());
    throw CLI::RuntimeError(1);
  }
}

}  // namespace lanrelay::cli
