// `lanrelay status [HOST[:PORT]] [--json]`: fetches a relay's /-/status (the same document the
// status page renders) and prints it for a terminal, or prints the JSON as it came.
//
// Every string from the relay is passed through `terminal_safe` before it is printed: a name or
// error text holding escape sequences must not drive the administrator's terminal.

#include "status_command.hpp"
#include "command_error.hpp"
#include "relay_admin.hpp"

#include "lanrelay/base/redact.hpp"
#include "lanrelay/base/text_format.hpp"
#include "lanrelay/relay/mirror_service.hpp"

#include <boost/json.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <string>

namespace lanrelay::cli {
namespace {

namespace json = boost::json;

struct status_args {
  std::string target = "127.0.0.1";
  bool json = false;
  std::string site_key;
  std::string https_port = "4128";
};

std::string terminal_safe(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

// Printable, and with no URL password even from a relay that still shows them.
std::string text_of(const json::value& v) {
  if (v.is_string()) {
    return terminal_safe(redact_urls(v.get_string()));
  }
  if (v.is_null()) {
    return "-";
  }
  return terminal_safe(redact_urls(json::serialize(v)));
}

std::uint64_t number_of(const json::value& v) {
  boost::system::error_code ec;
  const auto n = v.to_number<std::uint64_t>(ec);
  return ec ? 0 : n;
}



// "3 d" from a number of seconds, "-" from null.
std::string age_of(const json::value& v) {
  if (!v.is_number()) {
    return "-";
  }
  return human_duration(std::chrono::seconds(number_of(v)));
}

// One line per component: what is served, what the upstream lists, and for how long each.
void print_freshness(const json::array& components) {
  for (const auto& c : components) {
    if (!c.is_object()) {
      continue;
    }
    const auto& o = c.get_object();
    const auto field = [&](std::string_view key) -> const json::value& {
      static const json::value none;
      const auto* p = o.if_contains(key);
      return p != nullptr ? *p : none;
    };
    const auto version = [&](std::string_view key, std::string_view empty) {
      const auto& v = field(key);
      return v.is_string() && !v.get_string().empty() ? text_of(v) : std::string(empty);
    };
    const bool behind = field("behind").is_bool() && field("behind").get_bool();
    fmt::print("    {}: served {} ({}), upstream lists {} ({}){}\n", text_of(field("component")),
               version("served", "none"), age_of(field("served_age_seconds")),
               version("upstream", "not known yet"), age_of(field("upstream_age_seconds")),
               behind ? ", BEHIND for " + age_of(field("behind_seconds")) : std::string(", current"));
  }
}

// 24 hourly sums of a per-bucket series as a row of block characters, scaled to `peak`.
std::string sparkline(const json::array& series, std::uint64_t bucket_seconds, std::uint64_t peak) {
  constexpr std::array blocks{" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  const std::size_t per_hour = bucket_seconds > 0 ? std::max<std::size_t>(1, 3600 / bucket_seconds) : 12;
  std::string out;
  for (std::size_t start = 0; start < series.size(); start += per_hour) {
    std::uint64_t sum = 0;
    for (std::size_t i = start; i < std::min(series.size(), start + per_hour); ++i) {
      sum += number_of(series[i]);
    }
    const std::size_t level =
        sum == 0 || peak == 0 ? 0 : std::max<std::size_t>(1, (sum * 8 + peak - 1) / peak);
    out += blocks[std::min<std::size_t>(level, 8)];
  }
  return out;
}

std::uint64_t hourly_peak(const json::array& series, std::uint64_t bucket_seconds) {
  const std::size_t per_hour = bucket_seconds > 0 ? std::max<std::size_t>(1, 3600 / bucket_seconds) : 12;
  std::uint64_t peak = 0;
  for (std::size_t start = 0; start < series.size(); start += per_hour) {
    std::uint64_t sum = 0;
    for (std::size_t i = start; i < std::min(series.size(), start + per_hour); ++i) {
      sum += number_of(series[i]);
    }
    peak = std::max(peak, sum);
  }
  return peak;
}

void print_status(const json::object& s, const std::string& where) {
  const auto& totals = s.at("totals").as_object();
  const auto& transfers = s.at("transfers").as_object();
  fmt::print("lanrelay {} {} at {}, up {}, log level {}\n", text_of(s.at("role")),
             text_of(s.at("version")), terminal_safe(where),
             human_duration(std::chrono::seconds(number_of(s.at("uptime_seconds")))), text_of(s.at("log_level")));
  fmt::print("served locally {}, fetched upstream {}, WAN spared {}, hash mismatches {}\n",
             human_bytes(number_of(totals.at("bytes_served"))),
             human_bytes(number_of(totals.at("bytes_fetched_upstream"))),
             human_bytes(number_of(totals.at("bytes_spared"))),
             number_of(totals.at("hash_mismatches")));
  fmt::print("transfers {}/{} running, {} refused as busy\n", number_of(transfers.at("running")),
             number_of(transfers.at("max")), number_of(transfers.at("refused_busy")));

  const auto& traffic = s.at("traffic").as_object();
  const auto bucket = number_of(traffic.at("bucket_seconds"));
  const auto& served = traffic.at("served").as_array();
  const auto& upstream = traffic.at("upstream").as_array();
  const auto peak = std::max(hourly_peak(served, bucket), hourly_peak(upstream, bucket));
  fmt::print("\nTRAFFIC, last 24 h per hour (peak {} per hour)\n", human_bytes(peak));
  fmt::print("  served   |{}|\n", sparkline(served, bucket, peak));
  fmt::print("  upstream |{}|\n", sparkline(upstream, bucket, peak));

  const auto& running = transfers.at("list").as_array();
  fmt::print("\nTRANSFERS RUNNING ({})\n", running.size());
  if (!running.empty()) {
    fmt::print("  {:<40} {:<46} {:>11} {:>11} {:>8}\n", "CLIENT", "ITEM", "SENT", "OF", "FOR");
    for (const auto& t : running) {
      fmt::print("  {:<40} {:<46} {:>11} {:>11} {:>8}\n", text_of(t.at("client")),
                 text_of(t.at("item")), human_bytes(number_of(t.at("bytes_sent"))),
                 human_bytes(number_of(t.at("length"))), human_duration(std::chrono::seconds(number_of(t.at("seconds")))));
    }
  }

  const auto& peers = s.at("top_peers").as_array();
  fmt::print("\nTOP PEERS SERVED\n");
  if (peers.empty()) {
    fmt::print("  none yet\n");
  } else {
    fmt::print("  {:<40} {:>11} {:>10}\n", "CLIENT", "BYTES", "TRANSFERS");
    for (const auto& p : peers) {
      fmt::print("  {:<40} {:>11} {:>10}\n", text_of(p.at("client")),
                 human_bytes(number_of(p.at("bytes"))), number_of(p.at("transfers")));
    }
  }

  const auto& cache = s.at("cache").as_object();
  const auto max = number_of(cache.at("max_bytes"));
  fmt::print("\nCACHE ({} items, {}{})\n", number_of(cache.at("item_count")),
             human_bytes(number_of(cache.at("bytes"))),
             max != 0 ? " of " + human_bytes(max) : std::string());
  const auto& items = cache.at("items").as_array();
  if (!items.empty()) {
    fmt::print("  {:<10} {:<28} {:<16} {:>11} {:<6} {}\n", "KIND", "NAME", "VERSION", "SIZE",
               "PINNED", "LAST USED");
    for (const auto& it : items) {
      fmt::print("  {:<10} {:<28} {:<16} {:>11} {:<6} {}\n", text_of(it.at("kind")),
                 text_of(it.at("name")), text_of(it.at("version")),
                 human_bytes(number_of(it.at("size"))), it.at("pinned").as_bool() ? "yes" : "",
                 text_of(it.at("last_used")));
    }
  }

  const auto& mirrors = s.at("mirrors").as_object();
  const auto& sources = mirrors.at("sources").as_array();
  fmt::print("\nMIRROR SOURCES\n");
  if (!mirrors.at("configured").as_bool() || sources.empty()) {
    fmt::print("  none configured\n");
  } else {
    for (const auto& m : sources) {
      const auto& syncs = m.at("syncs").as_object();
      fmt::print("  {} <- {}\n    last success {}, last attempt {}, syncs ok {} / 304 {} / failed "
                 "{}\n",
                 text_of(m.at("name")), text_of(m.at("upstream")), text_of(m.at("last_success")),
                 text_of(m.at("last_attempt")), number_of(syncs.at("ok")),
                 number_of(syncs.at("not_modified")), number_of(syncs.at("failed")));
      for (const char* key : {"last_error", "status_error"}) {
        if (const auto& e = m.at(key); e.is_string() && !e.get_string().empty()) {
          fmt::print("    error: {}\n", text_of(e));
        }
      }
      if (const auto* b = m.as_object().if_contains("blocked");
          b != nullptr && b->is_string() && !b->get_string().empty()) {
        fmt::print("    blocked: {}\n", text_of(*b));
      }
      if (const auto rate = relay::rate_from_json(m.as_object().if_contains("rate"))) {
        fmt::print("    rate limit: {}\n", rate_text(*rate));
      }
      if (const auto* f = m.as_object().if_contains("freshness"); f != nullptr && f->is_array()) {
        print_freshness(f->get_array());
      }
    }
    if (const auto rate = relay::rate_from_json(mirrors.if_contains("rate"))) {
      fmt::print("  all sources together: rate limit {}\n", rate_text(*rate));
    }
  }
}

void run_status(const status_args& args) {
  const auto relay = relay_for(args.target, args.site_key, args.https_port, std::chrono::seconds(30));
  const std::string where =
      relay.host + ":" + (relay.pinned_certificates.empty() ? relay.port : relay.https_port);
  const auto reply = relay_request(relay, "GET", "/-/status", std::chrono::seconds(30));
  if (reply.status != 200) {
    throw command_error("lanrelayd at " + where + " answered " + std::to_string(reply.status) +
                        (reply.status == 403
                             ? ": this machine is not in the relay's [admin] read_networks "
                               "(monitoring answers loopback and those networks only)"
                             : ": " + terminal_safe(reply.body)));
  }
  boost::system::error_code ec;
  auto parsed = json::parse(reply.body, ec);
  if (ec || !parsed.is_object()) {
    throw command_error("lanrelayd at " + where + " did not return a status document: " +
                        (ec ? ec.message() : std::string("not a JSON object")));
  }
  if (args.json) {
    fmt::print("{}\n", redact_urls(json::serialize(parsed)));
    return;
  }
  try {
    print_status(parsed.as_object(), where);
  } catch (const std::exception& e) {
    throw command_error("lanrelayd at " + where + " returned a status document this lanrelay "
                        "does not understand (" + e.what() + "); use --json to see it");
  }
}

}  // namespace

void add_status_command(CLI::App& app) {
  auto args = std::make_shared<status_args>();
  auto* cmd = app.add_subcommand("status", "Show what a relay is doing: transfers, peers, cache, "
                                           "mirrors and 24 h of traffic");
  cmd->add_option("target", args->target, "HOST[:PORT] of the relay (default 127.0.0.1:4127)");
  cmd->add_flag("--json", args->json, "Print the relay's /-/status JSON as it came");
  cmd->add_option("--site-key", args->site_key,
                  "The relay's site public key (lanrelay-ed25519:... or a file): ask over HTTPS "
                  "pinned through its signed catalog (or set LANRELAY_SITE_KEY)");
  cmd->add_option("--https-port", args->https_port, "The relay's HTTPS port (default 4128)");
  cmd->callback([args] { run_guarded([&] { run_status(*args); }); });
}

}  // namespace lanrelay::cli
