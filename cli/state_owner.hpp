#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace lanrelay::cli {

// When the command runs as root on a state directory that belongs to another user (the packaged
// lanrelayd runs as `lanrelay`), it gives up root for good and becomes that user (its primary
// group and supplementary groups too) before it touches the store, so every file it creates
// belongs to the user the daemon runs as. Returns that user's name; nullopt when nothing changed:
// not root, the directory does not exist yet, or it belongs to root. Throws command_error when
// the switch fails.
std::optional<std::string> become_owner_of(const std::filesystem::path& state_dir);

}  // namespace lanrelay::cli
