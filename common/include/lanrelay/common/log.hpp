#pragma once

#include <string_view>

namespace lanrelay {

// Sets up spdlog for a daemon or command: one line per event to stderr, "key=value" fields in the
// message. Safe to call again to change the level. Returns false (and keeps "info") when `level` is not a spdlog level name.
bool init_logging(std::string_view level);

}  // namespace lanrelay
