#pragma once

// `--agent-config FILE` of fetch, discover and update: the agent's configuration
// (agent/agent_config.hpp: the address plan, DNS-SD). Without the option,
// /etc/lanrelay/agent.toml when it exists, else the defaults (the segment only).

#include "command_error.hpp"

#include "lanrelay/agent/agent_config.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

namespace lanrelay::cli {

inline agent::agent_discovery_settings load_discovery_sources(
    const std::optional<std::filesystem::path>& file) {
  std::filesystem::path path(agent::default_agent_config_file);
  if (file) {
    path = *file;
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return {};
    }
  }
  auto loaded = agent::load_agent_config(path);
  if (!loaded.ok()) {
    std::string text = "the agent configuration is not valid:";
    for (const auto& d : loaded.diagnostics) {
      text += "\n  " + d.to_string();
    }
    throw command_error(text);
  }
  return loaded.config.discovery;
}

}  // namespace lanrelay::cli
