#pragma once

// What every daemon's configuration shares, without TOML: the problems a loader reports
// (config_diagnostic, file:line:column), the result of a load, and what a reload decided
// (reload_plan). The table machinery itself — each setting's section, key, type, doc,
// validation, whether it reloads and its apply hook — is in detail/settings_toml.hpp, which
// only a daemon's config .cpp includes (toml++ stays private to the libraries that parse).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay {

struct config_diagnostic {
  std::string file;
  std::uint32_t line = 0;    // 1-based; 0 when the problem has no position
  std::uint32_t column = 0;  // 1-based; 0 when the problem has no position
  std::string message;

  std::string to_string() const;  // "file:line:column: message", URLs' passwords redacted
};

template <typename Config>
struct basic_config_load_result {
  Config config;
  std::vector<config_diagnostic> diagnostics;  // empty when the file is valid

  bool ok() const noexcept { return diagnostics.empty(); }
};

namespace settings {

// What a reload did with the settings that differ between the running configuration and the
// file, as "section.key" (lists of tables by their name, "mirror.source", "proxy") in the
// order of the settings table.
struct reload_plan {
  std::vector<std::string> applied;       // reloadable: the running daemon took the new value
  std::vector<std::string> need_restart;  // not reloadable (or its apply hook refused): they
                                          // keep their running value until a restart
  bool changed() const noexcept { return !applied.empty() || !need_restart.empty(); }
};

// The base of each daemon's apply hooks (relay_reload_hooks in relay/config.hpp,
// proxyhelper::reload_hooks in proxyhelper/config.hpp): what a reloaded setting calls to reach
// the running daemon. Each setting's hook, in the daemon's settings table, receives the
// daemon's own hooks type (settings::live in detail/settings_toml.hpp).
struct live_hooks {
  virtual ~live_hooks() = default;
};

// Reads a whole file; an unreadable file is a diagnostic without position.
std::optional<std::string> read_config_file(const std::filesystem::path& file,
                                            std::vector<config_diagnostic>& diagnostics);

}  // namespace settings
}  // namespace lanrelay
