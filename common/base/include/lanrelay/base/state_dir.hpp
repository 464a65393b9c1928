#pragma once

// Where a lanrelay process keeps its state when no directory is configured: shared by lanrelayd,
// proxyhelperd and the lanrelay command (its agent commands use the daemon's directory).

#include <filesystem>
#include <stdexcept>
#include <string>

namespace lanrelay {

// The state directory when none is configured: /var/lib/lanrelay for root, else
// $XDG_STATE_HOME/lanrelay (~/.local/state/lanrelay). Without either variable:
// $XDG_RUNTIME_DIR/lanrelay, else <tmp>/lanrelay-<uid> (tmp: $TMPDIR or /tmp), which is created
// mode 0700 and refused when it exists but is not a directory of ours that only we can enter
// (another user may have created it first, to read or plant state): `problem` says so, and `dir`
// is empty.
struct default_state_dir_choice {
  std::filesystem::path dir;
  std::string problem;
};
default_state_dir_choice find_default_state_dir();

// Thrown by default_state_dir() when the choice is refused.
struct state_dir_refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// find_default_state_dir().dir; throws state_dir_refused with its problem when refused.
std::filesystem::path default_state_dir();

}  // namespace lanrelay
