#include "agent_commands.hpp"
#include "agent_config_option.hpp"
#include "attempt_options.hpp"
#include "command_error.hpp"
#include "command_support.hpp"
#include "proxy_command.hpp"
#include "state_owner.hpp"

#include "lanrelay/agent/discovery_sources.hpp"
#include "lanrelay/agent/dns_sd.hpp"
#include "lanrelay/agent/fetch.hpp"
#include "lanrelay/agent/offer_route.hpp"
#include "lanrelay/base/machine_cookie.hpp"
#include "lanrelay/base/state_dir.hpp"
#include "lanrelay/base/tls_identity.hpp"
#include "lanrelay/relay/config.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <memory>

namespace lanrelay::cli {
namespace {

namespace net = boost::asio;
namespace json = boost::json;

struct item_args {
  std::string kind;
  std::string name;
  std::string version;
  std::string sha256;
  std::uint64_t size = 0;
  std::string window = "500ms";
  std::vector<std::string> targets;
  std::uint16_t port = discovery::default_port;
  bool json = false;
  std::optional<std::filesystem::path> state_dir;
  std::optional<std::filesystem::path> agent_config;

  agent::wanted_item wanted() const {
    const auto parsed = parse_item_kind(kind);
    if (!parsed) {
      throw command_error("--kind must be installer, pattern or file, not '" + kind + "'");
    }
    if (!is_valid_name(name)) {
      throw command_error("--name '" + name + "' is not a valid item name");
    }
    agent::wanted_item w{*parsed, name, version, std::nullopt};
    if (*parsed != item_kind::installer) {
      auto canonical = canonical_version(*parsed, version);
      if (!canonical) {
        throw command_error("--version '" + version + "': " + canonical.error().message());
      }
      w.version = *canonical;
    } else if (!dotted_version::parse(version)) {
      throw command_error("--version '" + version + "' is not a dotted installer version");
    }
    if (!sha256.empty()) {
      w.sha256 = parse_sha256_hex(sha256);
      if (!w.sha256) {
        throw command_error("--sha256 must be 64 hexadecimal digits");
      }
    }
    return w;
  }

  agent::discovery_options discovery() const {
    agent::discovery_options d;
    d.port = port;
    const auto ms = parse_duration_ms(window);
    if (!ms) {
      throw command_error("--window '" + window + "' is not a duration such as 500ms or 2s");
    }
    d.window = *ms;
    for (const auto& t : targets) {
      boost::system::error_code ec;
      d.targets.push_back(net::ip::make_address(t, ec));
      if (ec) {
        throw command_error("--target '" + t + "' is not an IP address");
      }
    }
    return d;
  }
};

void add_item_options(CLI::App& cmd, item_args& args) {
  cmd.add_option("--kind", args.kind, "installer, pattern or file")->required();
  cmd.add_option("--name", args.name, "Item name")->required();
  cmd.add_option("--version", args.version,
                 "Wanted version: installers Major.Minor (or longer, only Major.Minor counts); "
                 "patterns and files exactly")
      ->required();
  cmd.add_option("--window", args.window, "How long to wait for offers")
      ->check(duration_validator())
      ->capture_default_str();
  cmd.add_option("--target", args.targets,
                 "Ask these addresses by unicast instead of broadcasting (e.g. 127.0.0.1)");
  cmd.add_option("--port", args.port, "Discovery UDP port")->capture_default_str();
  cmd.add_flag("--json", args.json, "Print one JSON object");
  cmd.add_option("--state-dir", args.state_dir,
                 "State directory (segment memory, machine cookie, peer cache); default: the "
                 "daemon's");
  cmd.add_option("--agent-config", args.agent_config,
                 "Agent configuration: the address plan ([[discovery.site]]) and DNS-SD "
                 "([discovery]); default: /etc/lanrelay/agent.toml when it exists");
}

// A progress bar on stderr when it is a terminal and the item is large.
class progress_bar {
 public:
  progress_bar() : enabled_(::isatty(STDERR_FILENO) == 1) {}
  ~progress_bar() {
    if (shown_) {
      fmt::print(stderr, "\n");
    }
  }
  void update(std::uint64_t done, std::uint64_t total) {
    constexpr std::uint64_t large = 8 << 20;
    if (!enabled_ || total < large) {
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (shown_ && now - last_ < std::chrono::milliseconds(100) && done != total) {
      return;
    }
    last_ = now;
    shown_ = true;
    const int width = 30;
    const int filled = static_cast<int>(width * done / total);
    fmt::print(stderr, "\r[{}{}] {:3}% {:.1f}/{:.1f} MiB", std::string(filled, '#'),
               std::string(width - filled, ' '), 100 * done / total, done / 1048576.0,
               total / 1048576.0);
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

void add_agent_commands(CLI::App& app) {
  struct fetch_args : item_args {
    std::filesystem::path output;
    std::string upstream;
    std::vector<std::string> site_keys;
    std::optional<std::filesystem::path> ca_file;
    bool peer = false;
    bool no_discovery = false;
    std::string busy_patience = "60s";
    bool resolve_proxy = false;
    proxy_cli_options proxy;
    attempt_options attempt;
    std::string relay_https = "prefer";
    std::uint16_t relay_https_port = 4128;
  };
  auto args = std::make_shared<fetch_args>();
  auto* fetch = app.add_subcommand(
      "fetch", "Get one item from the segment, or from the upstream when nobody there has it");
  add_item_options(*fetch, *args);
  fetch->add_option("--output,-o", args->output, "Where to write the item")->required();
  fetch->add_option("--size", args->size, "Expected size in bytes (with --sha256)");
  fetch->add_option("--sha256", args->sha256,
                    "Expected SHA-256: the trusted digest (with --size); lets any peer serve it");
  fetch->add_option("--upstream", args->upstream, "URL of the item on the upstream server");
  fetch->add_option("--site-key", args->site_keys,
                    "Pinned site public key (lanrelay-ed25519:...): trust catalogs it signed; "
                    "repeat to pin two keys during a rotation");
  fetch->add_option("--relay-https", args->relay_https,
                    "off, prefer or require: fetch relays' catalogs and items over HTTPS pinned "
                    "to the certificates their signed catalogs list (needs --site-key)")
      ->capture_default_str();
  fetch->add_option("--relay-https-port", args->relay_https_port, "The relays' HTTPS port")
      ->capture_default_str();
  fetch->add_option("--ca-file", args->ca_file, "CA certificates for an https:// upstream");
  fetch->add_flag("--peer", args->peer, "This machine runs as a peer: keep the item in its cache");
  fetch->add_flag("--no-discovery", args->no_discovery, "Do not ask the segment");
  fetch->add_option("--busy-patience", args->busy_patience,
                    "When every holder is busy (503), keep asking the segment this long before "
                    "the upstream")
      ->check(duration_validator())
      ->capture_default_str();
  fetch->add_flag("--resolve-proxy", args->resolve_proxy,
                  "Reach the upstream through the route `lanrelay proxy resolve` finds");
  args->proxy.add_to(*fetch);
  args->attempt.add_to(*fetch, "1h", "The whole fetch");
  fetch->callback([args] {
    run_guarded([&] {
      agent::fetch_options options;
      options.wanted = args->wanted();
      options.output = args->output;
      options.discovery = args->discovery();
      options.use_discovery = !args->no_discovery;
      options.sources = load_discovery_sources(args->agent_config);
      options.state_dir = args->state_dir ? *args->state_dir : default_state_dir();
      options.peer_cache = args->peer;
      const auto patience = parse_duration_ms(args->busy_patience);
      if (!patience) {
        throw command_error("--busy-patience '" + args->busy_patience +
                            "' is not a duration such as 500ms or 60s");
      }
      options.busy_patience = *patience;
      options.limits = args->attempt.limits();
      options.deadline = args->attempt.overall();
      if (options.wanted.sha256) {
        if (args->size == 0) {
          throw command_error("--sha256 needs --size: a trusted digest is a size and a SHA-256");
        }
        options.digest = agent::trusted_digest{args->size, *options.wanted.sha256};
      }
      if (!args->upstream.empty()) {
        auto url = boost::urls::parse_uri(args->upstream);
        if (!url || (url->scheme_id() != boost::urls::scheme::http &&
                     url->scheme_id() != boost::urls::scheme::https)) {
          throw command_error("--upstream '" + args->upstream + "' is not an http:// or https:// URL");
        }
        options.upstream = *url;
      }
      for (const auto& text : args->site_keys) {
        auto key = parse_public_key(text);
        if (!key) {
          throw command_error("--site-key '" + text + "': " + key.error().message());
        }
        options.site_keys.push_back(*key);
      }
      const auto https_mode = agent::parse_relay_https_mode(args->relay_https);
      if (!https_mode) {
        throw command_error("--relay-https '" + args->relay_https +
                            "' is not one of off, prefer, require");
      }
      options.relay_https = {*https_mode, args->relay_https_port};
      options.tls.ca_file = args->ca_file;
      if (args->resolve_proxy) {
        options.upstream_proxy = args->proxy.upstream_route(options.tls);
      }
      progress_bar bar;
      options.progress = [&bar](std::uint64_t done, std::uint64_t total) { bar.update(done, total); };

      auto result = run_to_completion(agent::fetch(options));
      if (!result) {
        throw command_error(result.error().message);
      }
      const auto& o = *result;
      if (args->json) {
        json::array attempts;
        for (const auto& a : o.attempts) {
          attempts.push_back(json::object{{"url", a.url}, {"outcome", a.outcome}});
        }
        json::object out{{"source", agent::to_string(o.source)},
                         {"responder", o.responder},
                         {"fallback_reason", o.fallback_reason},
                         {"version", o.version},
                         {"bytes", o.bytes},
                         {"sha256", to_hex(o.sha256)},
                         {"verified", o.verified},
                         {"duration_ms", o.duration.count()},
                         {"offers_seen", o.offers_seen},
                         {"relay_bytes", o.relay_bytes},
                         {"peer_bytes", o.peer_bytes},
                         {"attempts", attempts}};
        fmt::print("{}\n", json::serialize(out));
      } else {
        fmt::print("{} {} bytes from {} {} in {} ms (sha256 {})\n", args->output.string(), o.bytes,
                   agent::to_string(o.source), o.responder, o.duration.count(), to_hex(o.sha256));
      }
    });
  });

  struct discover_args : item_args {
    bool explain = false;
  };
  auto dargs = std::make_shared<discover_args>();
  auto* discover = app.add_subcommand("discover", "List who in the segment offers an item");
  add_item_options(*discover, *dargs);
  discover->add_option("--sha256", dargs->sha256, "Only offers of these exact bytes");
  discover->add_flag("--explain", dargs->explain,
                     "Also print which sources were tried (segment, address plan, DNS-SD), what "
                     "each found and how long it took");
  discover->callback([dargs] {
    run_guarded([&] {
      discovery::query q;
      const auto wanted = dargs->wanted();
      q.transaction_id = random_u64();
      q.sender_cookie = random_u64();
      q.kind = wanted.kind;
      q.name = wanted.name;
      q.version = wanted.version;
      q.sha256 = wanted.sha256;
      auto options = dargs->discovery();
      options.enough_offers = std::numeric_limits<std::size_t>::max();  // list everyone
      std::vector<agent::candidate> offers;
      std::vector<agent::source_report> reports;
      if (options.targets.empty()) {
        // Every source, without the segment memory: a diagnostic asks afresh.
        const auto settings = load_discovery_sources(dargs->agent_config);
        agent::sources_options sources;
        sources.discovery = options;
        sources.segment = settings.segment;
        sources.sites = settings.sites;
        sources.dns_sd = settings.dns_sd;
        sources.dns = {.resolv_conf = settings.resolv_conf,
                       .server = settings.dns_server,
                       .timeout = settings.resolver_timeout};
        auto searched = run_to_completion(agent::discover_from_sources(q, sources));
        offers = std::move(searched.offers);
        reports = std::move(searched.reports);
      } else {
        auto found = run_to_completion(agent::discover(q, options));
        offers = std::move(found.offers);
        reports.push_back({.source = agent::discovery_source::segment,
                           .tried = true,
                           .note = "unicast to --target",
                           .offers = offers.size()});
      }
      std::set<std::string> seen;
      json::array out;
      if (!dargs->json) {
        fmt::print("{:<6} {:<22} {:<14} {:>12} {:>5}  {}\n", "ROLE", "FROM", "VERSION", "SIZE",
                   "FREE", "URL");
      }
      for (const auto& c : offers) {
        if (!seen.insert(c.offer.url).second) {
          continue;
        }
        const auto role = c.offer.role == discovery::responder_role::relay ? "relay" : "peer";
        const auto from = c.from.address().to_string();
        // Where a fetch would connect: the sender through the interface the offer came in on.
        const auto route = agent::route_to(c);
        auto address = route.address;
        if (address.is_v6()) {
          auto v6 = address.to_v6();
          v6.scope_id(0);
          address = v6;
        }
        if (dargs->json) {
          out.push_back(json::object{{"role", role},
                                     {"from", from},
                                     {"address", address.to_string()},
                                     {"interface", route.interface},
                                     {"zone", route.zone.empty() ? json::value(nullptr)
                                                                 : json::value(route.zone)},
                                     {"version", c.offer.version},
                                     {"size", c.offer.size},
                                     {"sha256", to_hex(c.offer.sha256)},
                                     {"free_slots", c.offer.free_slots},
                                     {"url", c.offer.url}});
        } else {
          fmt::print("{:<6} {:<22} {:<14} {:>12} {:>5}  {}\n", role, from, c.offer.version,
                     c.offer.size, c.offer.free_slots, c.offer.url);
        }
      }
      if (dargs->json && dargs->explain) {
        json::array sources;
        for (const auto& r : reports) {
          json::array relays;
          for (const auto& relay : r.relays) {
            relays.emplace_back(relay);
          }
          sources.push_back(json::object{{"source", agent::to_string(r.source)},
                                         {"tried", r.tried},
                                         {"note", r.note},
                                         {"relays", relays},
                                         {"offers", r.offers},
                                         {"dns_queries", r.dns_queries},
                                         {"dns_timeouts", r.dns_timeouts},
                                         {"ms", r.took.count()}});
        }
        fmt::print("{}\n", json::serialize(json::object{{"offers", out}, {"sources", sources}}));
        return;
      }
      if (dargs->json) {
        fmt::print("{}\n", json::serialize(out));
      } else if (seen.empty()) {
        fmt::print("no offers within {}\n", dargs->window);
      }
      if (dargs->explain) {
        fmt::print("\n{:<18} {:<6} {:>7} {:>6}  {}\n", "SOURCE", "TRIED", "MS", "OFFERS",
                   "WHAT IT FOUND");
        for (const auto& r : reports) {
          std::string what = r.note;
          if (!r.relays.empty()) {
            std::string relays;
            for (const auto& relay : r.relays) {
              relays += (relays.empty() ? "" : ",") + relay;
            }
            what += (what.empty() ? "" : "; ") + std::string("asked ") + relays;
          }
          if (r.dns_queries > 0) {
            what += "; " + std::to_string(r.dns_queries) + " DNS queries, " +
                    std::to_string(r.dns_timeouts) + " unanswered";
          }
          fmt::print("{:<18} {:<6} {:>7} {:>6}  {}\n", agent::to_string(r.source),
                     r.tried ? "yes" : "no", r.took.count(), r.offers, what);
        }
      }
    });
  });
}

void add_key_commands(CLI::App& app) {
  auto* key = app.add_subcommand("key", "The site key that signs the relay's catalog");
  key->require_subcommand(1);

  auto out = std::make_shared<std::filesystem::path>();
  auto force = std::make_shared<bool>(false);
  auto* generate = key->add_subcommand("generate", "Create a site key; prints its public key");
  generate->add_option("--out", *out, "Private key file (mode 0600), e.g. /var/lib/lanrelay/site.key")
      ->required();
  generate->add_flag("--force", *force, "Replace an existing key file");
  generate->callback([out, force] {
    run_guarded([&] {
      auto k = site_key::generate();
      if (!k) {
        throw command_error("cannot generate a key: " + k.error().message());
      }
      // Into the packaged relay's /var/lib/lanrelay as root: the key must belong to the daemon's
      // user, who alone may read it (0600).
      become_owner_of(std::filesystem::absolute(*out).parent_path());
      auto saved = k->save(*out, *force ? site_key::overwrite::yes : site_key::overwrite::no);
      if (!saved) {
        throw command_error(saved.error().message);
      }
      fmt::print("{}\n", k->public_key().to_string());
    });
  });

  auto file = std::make_shared<std::filesystem::path>();
  auto certificate = std::make_shared<std::filesystem::path>();
  auto* show = key->add_subcommand(
      "show", "Print the public key of a site key file, and the fingerprint of the relay's TLS "
              "certificate beside it");
  show->add_option("FILE", *file, "Private key file")->required();
  show->add_option("--certificate", *certificate,
                   "The relay's HTTPS certificate (default: tls.crt beside FILE, when present)");
  show->callback([file, certificate] {
    run_guarded([&] {
      auto k = site_key::load(*file);
      if (!k) {
        throw command_error(k.error().message);
      }
      fmt::print("{}\n", k->public_key().to_string());
      // What a DNS-SD TXT record names for agents pinned to this key (agent/dns_sd.hpp).
      fmt::print("dns-sd-txt site-key-sha256={}\n", agent::site_key_fingerprint(k->public_key()));
      const bool given = !certificate->empty();
      const auto cert = given ? *certificate : file->parent_path() / "tls.crt";
      std::error_code ec;
      if (!given && !std::filesystem::exists(cert, ec)) {
        return;
      }
      const auto fingerprint = certificate_fingerprint(cert);
      if (!fingerprint) {
        throw command_error(fingerprint.error().message);
      }
      fmt::print("tls-certificate-sha256 {}\n", fingerprint_text(*fingerprint));
    });
  });
}

}  // namespace lanrelay::cli
