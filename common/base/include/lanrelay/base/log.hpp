#pragma once

#include <exception>
#include <string_view>

namespace lanrelay {

// Sets up spdlog for a daemon or command: one line per event to stderr, "key=value" fields in the
// message. Safe to call again to change the level. Returns false (and keeps "info") when `level` is not a spdlog level name.
bool init_logging(std::string_view level);

// The level in force, spelt as the configuration spells it ("warn", not spdlog's "warning").
std::string_view current_log_level() noexcept;

// Logs the exception that ended a spawned coroutine ("<what> failed: <reason>"); nothing when
// `e` is null. Use as co_spawn's completion so that no failure goes unnoticed.
void log_failure(std::string_view what, std::exception_ptr e);

// The same as a completion handler: net::co_spawn(ex, task(), log_failure("accept loop")).
inline auto log_failure(std::string_view what) {
  return [what](std::exception_ptr e) { log_failure(what, e); };
}

}  // namespace lanrelay
