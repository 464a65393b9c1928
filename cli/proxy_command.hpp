#pragma once

#include "lanrelay/agent/fetch.hpp"
#include "lanrelay/proxy_resolution/proxy_resolver.hpp"

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

namespace lanrelay::cli {

// The options that steer proxy resolution, shared by `lanrelay proxy resolve`,
// `lanrelay fetch --resolve-proxy` and `lanrelay update --resolve-proxy`.
struct proxy_cli_options {
  std::vector<std::string> pinned_keys;
  bool accept_unsigned = false;
  std::string pac_url;
  std::string credentials_env;  // name of an environment variable holding "user:password"
  std::string credentials_proxy;  // "host:port" the credentials are bound to
  std::string auth = "basic";     // how they log in there: basic, digest, ntlm, negotiate
  bool no_segment = false;
  std::string window = "500ms";
  std::uint16_t port = 4129;
  std::vector<std::string> targets;
  std::string timeout = "3s";
  std::optional<std::string> ca_file;
  std::optional<std::string> proxy_ca_file;  // CA of an https:// proxy's certificate

  void add_to(CLI::App& cmd);
  // Validated resolver options; throws command_error with what is wrong.
  proxy_resolution::proxy_resolver_options resolver_options() const;

  // For `--resolve-proxy`: a fetch_options::upstream_proxy that resolves each upstream URL with
  // one resolver (its cache shared by every download of the command) and logs the route.
  agent::fetch_options::upstream_route_fn upstream_route(const tls_options& tls) const;
};

// Adds `lanrelay proxy resolve [URL]`.
void add_proxy_commands(CLI::App& app);

}  // namespace lanrelay::cli
