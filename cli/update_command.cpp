#include "update_command.hpp"
#include "agent_config_option.hpp"

#include "attempt_options.hpp"

#include "command_error.hpp"
#include "relay_admin.hpp"
#include "command_support.hpp"
#include "proxy_command.hpp"

#include "lanrelay/agent/au_update.hpp"
#include "lanrelay/base/site_key.hpp"
#include "lanrelay/base/state_dir.hpp"
#include "lanrelay/relay/config.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fmt/core.h>

#include <fstream>
#include <memory>
#include <sstream>

namespace lanrelay::cli {
namespace {

namespace json = boost::json;
namespace net = boost::asio;

json::value optional_text(const std::optional<std::string>& text) {
  return text ? json::value(*text) : json::value(nullptr);
}

std::string line_for(const agent::component_outcome& c) {
  const auto& p = c.plan;
  const std::string from = p.from ? *p.from : "none";
  if (p.action == agent::au_action::current) {
    return fmt::format("{} {} already current", p.name, p.to);
  }
  if (!c.ok) {
    return fmt::format("{} {} -> {} {} {} FAILED: {}", p.name, from, p.to,
                       agent::to_string(p.action), p.path, c.error);
  }
  return fmt::format("{} {} -> {} {} {} ({} bytes) from {} {}", p.name, from, p.to,
                     agent::to_string(p.action), p.path, c.bytes, agent::to_string(c.source),
                     c.responder);
}

}  // namespace

void add_update_command(CLI::App& app) {
  struct update_args {
    std::string index_url;
    std::filesystem::path dir;
    std::vector<std::string> components;
    std::vector<std::string> site_keys;
    std::vector<std::string> targets;
    std::uint16_t port = discovery::default_port;
    std::string window = "500ms";
    std::optional<std::filesystem::path> state_dir;
    std::optional<std::filesystem::path> agent_config;
    std::optional<std::filesystem::path> ca_file;
    bool peer = false;
    bool no_discovery = false;
    bool json = false;
    bool resolve_proxy = false;
    proxy_cli_options proxy;
    attempt_options attempt;
  };
  auto args = std::make_shared<update_args>();
  auto* update = app.add_subcommand(
      "update",
      "Bring the patterns and engines of one ActiveUpdate source in a directory up to date: Merge "
      "diff when one fits the local version, else the full file, each from the segment when "
      "possible. Exit status: 0 done or already current; 1 nothing done (bad arguments, index "
      "unavailable, directory unusable); 2 some components failed (the others were installed)");
  update->add_option("--index-url", args->index_url,
                     "The ActiveUpdate tree: http://<relay>:4127/activeupdate/<source>/ or the "
                     "upstream's tree (or its server.ini)")
      ->required();
  update->add_option("--dir", args->dir,
                     "Where the files are installed at their AU paths, with the record of "
                     "local versions (lanrelay-versions.json)")
      ->required();
  update->add_option("--component", args->components,
                     "Only this component: P.<id> (pattern), E.<id> (engine) or a bare id; "
                     "repeatable; default: every pattern and engine of the index");
  update->add_option("--site-key", args->site_keys,
                     "Pinned site public key, or a file holding it: trust the relay's signed "
                     "catalog, so that peers may serve the files; repeatable");
  update->add_option("--target", args->targets,
                     "Ask these addresses by unicast instead of broadcasting");
  update->add_option("--port", args->port, "Discovery UDP port")->capture_default_str();
  update->add_option("--window", args->window, "How long to wait for offers")
      ->check(duration_validator())
      ->capture_default_str();
  update->add_option("--state-dir", args->state_dir,
                     "State directory (segment memory, peer cache); default: the daemon's");
  update->add_option("--ca-file", args->ca_file, "CA certificates for an https:// index URL");
  update->add_flag("--peer", args->peer,
                   "This machine runs as a peer: also keep the files in its cache");
  update->add_flag("--no-discovery", args->no_discovery, "Do not ask the segment");
  update->add_option("--agent-config", args->agent_config,
                     "Agent configuration: the address plan ([[discovery.site]]) and DNS-SD "
                     "([discovery]); default: /etc/lanrelay/agent.toml when it exists");
  update->add_flag("--json", args->json, "Print one JSON object");
  update->add_flag("--resolve-proxy", args->resolve_proxy,
                   "Reach the index and the upstream files through the route `lanrelay proxy "
                   "resolve` finds");
  args->proxy.add_to(*update);
  args->attempt.add_to(*update, "4h", "The whole update (each file's fetch, then the components left)");
  update->callback([args] {
    int status = 0;
    run_guarded([&] {
      agent::au_update_options options;
      auto url = boost::urls::parse_uri(args->index_url);
      if (!url || (url->scheme_id() != boost::urls::scheme::http &&
                   url->scheme_id() != boost::urls::scheme::https)) {
        throw command_error("--index-url '" + args->index_url +
                            "' is not an http:// or https:// URL");
      }
      options.index_url = *url;
      options.dir = args->dir;
      options.components = args->components;
      auto& fetch = options.fetch;
      for (const auto& key : args->site_keys) {
        fetch.site_keys.push_back(read_site_key(key));
      }
      const auto window = parse_duration_ms(args->window);
      if (!window) {
        throw command_error("--window '" + args->window + "' is not a duration such as 500ms");
      }
      fetch.discovery.window = *window;
      fetch.discovery.port = args->port;
      for (const auto& t : args->targets) {
        boost::system::error_code ec;
        fetch.discovery.targets.push_back(net::ip::make_address(t, ec));
        if (ec) {
          throw command_error("--target '" + t + "' is not an IP address");
        }
      }
      fetch.use_discovery = !args->no_discovery;
      fetch.sources = load_discovery_sources(args->agent_config);
      fetch.limits = args->attempt.limits();
      options.deadline = args->attempt.overall();
      fetch.state_dir = args->state_dir ? *args->state_dir : default_state_dir();
      fetch.peer_cache = args->peer;
      fetch.tls.ca_file = args->ca_file;
      if (args->resolve_proxy) {
        fetch.upstream_proxy = args->proxy.upstream_route(fetch.tls);
      }

      auto result = run_to_completion(agent::update_activeupdate(options));
      if (!result) {
        throw command_error(result.error().message);
      }
      if (args->json) {
        json::array components;
        for (const auto& c : result->components) {
          const auto& p = c.plan;
          components.push_back(json::object{
              {"component", p.name},
              {"kind", p.kind == agent::au_component_kind::pattern ? "pattern" : "engine"},
              {"from", optional_text(p.from)},
              {"to", p.to},
              {"action", agent::to_string(p.action)},
              {"path", p.path},
              {"size", p.size},
              {"ok", c.ok},
              {"error", c.error},
              {"source", p.action == agent::au_action::current
                             ? json::value(nullptr)
                             : json::value(agent::to_string(c.source))},
              {"responder", c.responder},
              {"fallback_reason", c.fallback_reason},
              {"verified", c.verified},
              {"bytes", c.bytes}});
        }
        fmt::print("{}\n", json::serialize(json::object{{"index_url", result->index_url},
                                                        {"ok", result->ok()},
                                                        {"components", components}}));
      } else {
        for (const auto& c : result->components) {
          fmt::print("{}\n", line_for(c));
        }
      }
      if (!result->ok()) {
        status = 2;
      }
    });
    if (status != 0) {
      throw CLI::RuntimeError(status);
    }
  });
}

}  // namespace lanrelay::cli
