#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace lanrelay::cli {

// When the command runs as root on a directory that belongs to another user (the packaged
// lanrelayd's state directory belongs to `lanrelay`), it gives up root for good and becomes that
// user (its primary group and supplementary groups too) before it writes there, so every file it
// creates belongs to the user the daemon runs as (the store, a site key). Returns that user's
// name; nullopt when nothing changed: not root, the directory does not exist yet, or it belongs
// to root. Throws command_error when the switch fails.
std::optional<std::string> become_owner_of(const std::filesystem::path& dir);

}  // namespace lanrelay::cli
