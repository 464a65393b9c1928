#include "update_command.hpp"
#include "agent_config_option.hpp"

#include "attempt_options.hpp"

#include "command_error.hpp"
#include "relay_admin.hpp"
#include "command_support.hpp"
#include "proxy_command.hpp"

#include "lanrelay/agent/au_update.hpp"
#include "lanrelay/base/site_key.hpp"
#include "lanrelay/base/file_io.hpp"
#include "lanrelay/base/state_dir.hpp"
#include "lanrelay/base/text_format.hpp"
#include "lanrelay/relay/config.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <map>
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

// <dir>/lanrelay-checked.json, {"format":1,"components":{"P.48020000":<Unix seconds>,...}}: when
// an update last found each component current (installed it, or found it already current). The
// local age `lanrelay update` reports is the time since then: how long the machine may have been
// missing a newer version. Written by this command after the update (not under the update's
// lock: a lost race loses one timestamp, never a file).
constexpr std::string_view checked_file_name = "lanrelay-checked.json";
constexpr std::int64_t checked_format = 1;

using sys_clock = std::chrono::system_clock;
using checked_times = std::map<std::string, sys_clock::time_point>;

checked_times read_checked(const std::filesystem::path& dir) {
  checked_times out;
  const auto text = read_small_file(dir / checked_file_name, 1 << 20);
  if (!text) {
    return out;
  }
  boost::system::error_code ec;
  const auto v = json::parse(*text, ec);
  if (ec || !v.is_object()) {
    return out;
  }
  const auto* format = v.as_object().if_contains("format");
  const auto* components = v.as_object().if_contains("components");
  if (format == nullptr || !format->is_int64() || format->as_int64() != checked_format ||
      components == nullptr || !components->is_object()) {
    return out;
  }
  for (const auto& [name, at] : components->as_object()) {
    if (at.is_int64()) {
      out[std::string(name)] = sys_clock::time_point(std::chrono::seconds(at.as_int64()));
    }
  }
  return out;
}

void write_checked(const std::filesystem::path& dir, const checked_times& times) {
  json::object components;
  for (const auto& [name, at] : times) {
    components[name] = std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count();
  }
  const auto text =
      json::serialize(json::object{{"format", checked_format}, {"components", components}}) + "\n";
  if (auto w = write_atomically(dir / ".lanrelay-checked.json.tmp", dir / checked_file_name, text); !w) {
    fmt::print(stderr, "lanrelay: cannot record when the components were current in {}: {}\n",
               (dir / checked_file_name).string(), w.error().message());
  }
}

// Does `wanted` (--component: "P.<id>", "E.<id>" or a bare id) select component `name`?
bool selects(const std::vector<std::string>& wanted, const std::string& name) {
  if (wanted.empty()) {
    return true;
  }
  const auto lower = [](std::string t) {
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
    return t;
  };
  const auto dot = name.find('.');
  for (const auto& w : wanted) {
    if (lower(w) == lower(name) || (dot != std::string::npos && lower(w) == lower(name.substr(dot + 1)))) {
      return true;
    }
  }
  return false;
}

struct local_age {
  std::string component;
  std::string version;                          // installed; empty when none
  std::optional<std::chrono::seconds> age;      // since last found current; none: never
  bool stale = false;                           // older than --max-age
};

// The age of every installed component the update concerns. A component installed before this
// record existed counts from the record of local versions' last change.
std::vector<local_age> local_ages(const std::filesystem::path& dir,
                                  const std::vector<std::string>& wanted,
                                  std::chrono::milliseconds max_age, sys_clock::time_point now) {
  std::vector<local_age> out;
  const auto local = agent::read_local_versions(dir);
  if (!local) {
    return out;
  }
  const auto checked = read_checked(dir);
  std::optional<sys_clock::time_point> recorded;
  std::error_code ec;
  if (const auto t = std::filesystem::last_write_time(dir / agent::versions_file_name, ec); !ec) {
    recorded = std::chrono::time_point_cast<sys_clock::duration>(std::chrono::file_clock::to_sys(t));
  }
  for (const auto& [name, c] : local->components) {
    if (!selects(wanted, name)) {
      continue;
    }
    local_age a{name, c.version, std::nullopt, false};
    const auto it = checked.find(name);
    const auto since = it != checked.end() ? std::optional(it->second) : recorded;
    if (since) {
      a.age = std::chrono::duration_cast<std::chrono::seconds>(std::max(now - *since, sys_clock::duration{0}));
    }
    a.stale = max_age.count() > 0 && (!a.age || *a.age > max_age);
    out.push_back(std::move(a));
  }
  return out;
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
    std::string max_age = "168h";
    proxy_cli_options proxy;
    attempt_options attempt;
  };
  auto args = std::make_shared<update_args>();
  auto* update = app.add_subcommand(
      "update",
      "Bring the patterns and engines of one ActiveUpdate source in a directory up to date: Merge "
      "diff when one fits the local version, else the full file, each from the segment when "
      "possible. Exit status: 0 done or already current; 1 nothing done (bad arguments, index "
      "unavailable, directory unusable); 2 some components failed (the others were installed); "
      "3 a component was last found current longer ago than --max-age (its update failed, "
      "or the index no longer lists it)");
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
  update->add_option("--max-age", args->max_age,
                     "Warn (exit status 3) when a component was last found current longer ago "
                     "than this (its local age; 0: never warn)")
      ->check(duration_validator())
      ->capture_default_str();
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

      const auto max_age = parse_duration_ms(args->max_age);
      if (!max_age) {
        throw command_error("--max-age '" + args->max_age + "' is not a duration such as 168h");
      }
      auto result = run_to_completion(agent::update_activeupdate(options));
      const auto now = sys_clock::now();
      if (result) {
        auto checked = read_checked(args->dir);
        for (const auto& c : result->components) {
          if (c.ok) {
            checked[c.plan.name] = now;
          }
        }
        write_checked(args->dir, checked);
      }
      const auto ages = local_ages(args->dir, args->components, *max_age, now);
      const bool stale = std::any_of(ages.begin(), ages.end(), [](const local_age& a) { return a.stale; });
      const auto warn_stale = [&] {
        for (const auto& a : ages) {
          if (a.stale) {
            fmt::print(stderr,
                       "lanrelay: warning: {} {} was last found current {} (--max-age {}): "
                       "check the index URL and the network\n",
                       a.component, a.version,
                       a.age ? human_duration(*a.age) + " ago" : std::string("never"), args->max_age);
          }
        }
      };
      if (!result) {
        warn_stale();
        if (stale) {
          fmt::print(stderr, "lanrelay: {}\n", result.error().message);
          status = 3;
          return;
        }
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
        json::array age_list;
        for (const auto& a : ages) {
          age_list.push_back(json::object{
              {"component", a.component},
              {"version", a.version},
              {"age_seconds", a.age ? json::value(a.age->count()) : json::value(nullptr)},
              {"stale", a.stale}});
        }
        fmt::print("{}\n", json::serialize(json::object{
                               {"index_url", result->index_url},
                               {"ok", result->ok()},
                               {"components", components},
                               {"max_age_seconds", std::chrono::duration_cast<std::chrono::seconds>(*max_age).count()},
                               {"local_age", age_list}}));
      } else {
        for (const auto& c : result->components) {
          fmt::print("{}\n", line_for(c));
        }
        for (const auto& a : ages) {
          fmt::print("{} {} local age {}{}\n", a.component, a.version,
                     a.age ? human_duration(*a.age) : std::string("unknown"),
                     a.stale ? " (older than --max-age " + args->max_age + ")" : std::string{});
        }
      }
      warn_stale();
      if (stale) {
        status = 3;
      } else if (!result->ok()) {
        status = 2;
      }
    });
    if (status != 0) {
      throw CLI::RuntimeError(status);
    }
  });
}

}  // namespace lanrelay::cli
