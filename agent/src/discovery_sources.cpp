#include "lanrelay/agent/discovery_sources.hpp"

#include "lanrelay/agent/segment_memory.hpp"
#include "lanrelay/base/network_list.hpp"
#include "lanrelay/segment/interfaces.hpp"
#include "lanrelay/segment/query_rounds.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace lanrelay::agent {
namespace {

namespace net = boost::asio;
using udp = net::ip::udp;
using clock = std::chrono::steady_clock;

std::chrono::milliseconds since(clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
}

std::string endpoint_text(const udp::endpoint& e) {
  return e.address().is_v6() ? "[" + e.address().to_string() + "]:" + std::to_string(e.port())
                             : e.address().to_string() + ":" + std::to_string(e.port());
}

// Each relay once, in order.
std::vector<udp::endpoint> distinct(const std::vector<udp::endpoint>& relays) {
  std::vector<udp::endpoint> out;
  for (const auto& r : relays) {
    if (std::find(out.begin(), out.end(), r) == out.end()) {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace

std::string_view to_string(discovery_source source) noexcept {
  switch (source) {
    case discovery_source::memory:
      return "memory";
    case discovery_source::segment:
      return "segment";
    case discovery_source::address_plan:
      return "address-plan";
    case discovery_source::dns_sd:
      return "dns-sd";
    case discovery_source::remembered_relays:
      return "remembered-relays";
  }
  return "unknown";
}

std::vector<net::ip::address> own_addresses(const std::vector<network_interface>& interfaces) {
  std::vector<net::ip::address> out;
  for (const auto& i : interfaces) {
    if (i.loopback) {
      continue;
    }
    for (const auto& b : i.ipv4) {
      out.emplace_back(b.network.address());
    }
    // Global and unique-local addresses (an IPv6-only VPC subnet) and link-local ones; not an
    // address still in (or failed) duplicate address detection: the machine does not own it.
    for (const auto& b : i.ipv6) {
      if (!b.tentative) {
        out.emplace_back(b.network.address());
      }
    }
  }
  return out;
}

const discovery_site* match_site(const std::vector<discovery_site>& sites,
                                 const std::vector<net::ip::address>& own) {
  for (const auto& site : sites) {
    const auto networks = network_list::parse(site.networks);
    if (!networks) {
      continue;  // refused when the configuration was read
    }
    for (const auto& address : own) {
      if (networks->contains(address)) {
        return &site;
      }
    }
  }
  return nullptr;
}

std::optional<relay_name> parse_relay_name(std::string_view text, std::uint16_t default_port) {
  relay_name out;
  out.port = default_port;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    out.host = std::string(text.substr(1, close - 1));
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) {
        return std::nullopt;
      }
      port_text = rest.substr(1);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  } else {
    out.host = std::string(text);  // a name, an IPv4 address or a bare IPv6 address
  }
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  if (out.host.empty()) {
    return std::nullopt;
  }
  return out;
}

net::awaitable<discovery_result> ask_relays(const discovery::query& query,
                                            const std::vector<udp::endpoint>& relays,
                                            const discovery_options& options) {
  discovery_result result;
  const auto datagram = discovery::encode(query);
  if (!datagram || relays.empty()) {
    co_return result;
  }
  std::vector<query_destination> destinations;
  for (const auto& r : relays) {
    destinations.push_back({r, 0});
  }
  result.destinations = destinations.size();
  std::set<udp::endpoint> answered;
  const auto on_reply = [&](std::span<const std::byte> bytes, const received_datagram& got) {
    auto offer = discovery::decode_offer(bytes);
    if (got.truncated || !offer || offer->transaction_id != query.transaction_id ||
        offer->sender_cookie == query.sender_cookie) {
      ++result.dropped;
      return;
    }
    answered.insert(got.source);
    result.offers.push_back(candidate{.offer = std::move(*offer), .from = got.source});
  };
  const std::size_t expected = relays.size();
  const auto done = [&] { return answered.size() >= expected; };
  const query_round_options rounds{.window = options.window,
                                   .sends = options.sends,
                                   .ipv6 = std::any_of(relays.begin(), relays.end(),
                                                       [](const udp::endpoint& e) {
                                                         return e.address().is_v6();
                                                       }),
                                   .max_datagram = discovery::max_datagram,
                                   .what = "discovery"};
  // Named locals, not temporaries, in the co_await (GCC 12 coroutine bug).
  const std::span<const std::byte> bytes(*datagram);
  query_reply_fn reply = on_reply;
  std::function<bool()> enough = done;
  auto rounds_done =
      query_rounds(bytes, std::move(destinations), rounds, std::move(reply), std::move(enough));
  const auto counts = co_await std::move(rounds_done);
  result.send_errors = counts.send_errors;
  co_return result;
}

net::awaitable<sources_result> discover_from_sources(const discovery::query& query,
                                                     const sources_options& options) {
  sources_result out;
  const auto interfaces = list_interfaces();
  const std::string segment = segment_id(interfaces);
  std::optional<segment_memory> memory;
  if (options.memory_file && !segment.empty()) {
    memory.emplace(*options.memory_file);
  }
  const auto wall_now = std::chrono::system_clock::now();
  if (memory && memory->is_silent(segment, wall_now)) {
    out.reports.push_back({.source = discovery_source::memory,
                           .note = "no source found a relay on " + segment +
                                   " recently; not asking before the memory expires"});
    out.fallback_reason = "segment " + segment + " gave no answers recently";
    co_return out;
  }

  // Offers found: remembered, the search ends.
  const auto found = [&](discovery_source source, const std::vector<udp::endpoint>& relays,
                         bool broadcast_silent) {
    if (!memory) {
      return;
    }
    const auto now = std::chrono::system_clock::now();
    if (broadcast_silent && !relays.empty()) {
      std::vector<std::string> texts;
      for (const auto& r : relays) {
        texts.push_back(endpoint_text(r));
      }
      memory->remember_unicast(segment, to_string(source), texts, now + options.memory_period);
    }
    memory->remember_answer(segment, now + options.memory_period);
  };
  // Asks `relays` for the item; true when offers came (they are in out.offers).
  // (By reference: no temporaries in a co_await expression, GCC 12.)
  const auto ask = [&](source_report& report, const std::vector<udp::endpoint>& found_relays,
                       clock::time_point started) -> net::awaitable<bool> {
    const auto relays = distinct(found_relays);
    for (const auto& r : relays) {
      report.relays.push_back(endpoint_text(r));
    }
    auto asked = co_await ask_relays(query, relays, options.discovery);
    report.tried = true;
    report.offers = asked.offers.size();
    report.took = since(started);
    if (!asked.offers.empty()) {
      out.offers = std::move(asked.offers);
      co_return true;
    }
    report.note += report.note.empty() ? "no offers" : "; no offers";
    co_return false;
  };

  bool broadcast_silent = false;
  // Offers came from the relays a unicast source named: remembered with them while broadcast
  // stays silent.
  const auto found_by_unicast = [&](discovery_source source) {
    std::vector<udp::endpoint> answered;
    for (const auto& c : out.offers) {
      answered.push_back(c.from);
    }
    found(source, distinct(answered), broadcast_silent);
  };
  const auto remembered = memory ? memory->unicast(segment, wall_now) : std::nullopt;
  if (remembered) {
    out.reports.push_back({.source = discovery_source::segment,
                           .note = "skipped: silent recently, while " + remembered->via +
                                   " found relays"});
    broadcast_silent = true;
    const auto started = clock::now();
    source_report report{.source = discovery_source::remembered_relays,
                         .note = "found by " + remembered->via};
    std::vector<udp::endpoint> relays;
    for (const auto& text : remembered->relays) {
      const auto name = parse_relay_name(text, options.discovery.port);
      boost::system::error_code ec;
      const auto address = name ? net::ip::make_address(name->host, ec) : net::ip::address();
      if (name && !ec) {
        relays.emplace_back(address, name->port);
      }
    }
    const bool got = co_await ask(report, relays, started);
    out.reports.push_back(std::move(report));
    if (got) {
      found(discovery_source::remembered_relays, {}, false);
      co_return out;
    }
  } else if (options.segment) {
    const auto started = clock::now();
    auto broadcast = co_await agent::discover(query, options.discovery);
    source_report report{.source = discovery_source::segment, .tried = true};
    report.offers = broadcast.offers.size();
    report.took = since(started);
    report.note = broadcast.destinations == 0
                      ? "no interface to query the segment on"
                      : std::to_string(broadcast.destinations) + " destinations";
    out.reports.push_back(std::move(report));
    if (!broadcast.offers.empty()) {
      out.offers = std::move(broadcast.offers);
      found(discovery_source::segment, {}, false);
      co_return out;
    }
    broadcast_silent = broadcast.destinations != 0;
  } else {
    out.reports.push_back({.source = discovery_source::segment, .note = "disabled"});
  }

  {
    const auto started = clock::now();
    source_report report{.source = discovery_source::address_plan};
    const auto own = own_addresses(interfaces);
    const discovery_site* site = match_site(options.sites, own);
    if (options.sites.empty()) {
      report.note = "no [[discovery.site]] configured";
    } else if (site == nullptr) {
      report.note = "no site's networks hold this machine's addresses";
    } else {
      std::vector<udp::endpoint> relays;
      std::vector<std::string> names;
      std::vector<std::uint16_t> ports;
      for (const auto& text : site->relays) {
        const auto name = parse_relay_name(text, options.discovery.port);
        if (!name) {
          continue;
        }
        boost::system::error_code ec;
        const auto address = net::ip::make_address(name->host, ec);
        if (!ec) {
          relays.emplace_back(address, name->port);
        } else {
          names.push_back(name->host);
          ports.push_back(name->port);
        }
      }
      if (!names.empty()) {
        auto resolved = co_await resolve_hosts(names, options.dns);
        for (std::size_t i = 0; i < names.size(); ++i) {
          for (const auto& a : resolved[i]) {
            relays.emplace_back(a, ports[i]);
          }
        }
      }
      report.note = "site " + site->networks.front();
      if (relays.empty()) {
        report.tried = true;
        report.note += ": no relay name resolved";
        report.took = since(started);
      } else if (co_await ask(report, relays, started)) {
        out.reports.push_back(std::move(report));
        found_by_unicast(discovery_source::address_plan);
        co_return out;
      }
    }
    out.reports.push_back(std::move(report));
  }

  if (options.dns_sd) {
    const auto started = clock::now();
    source_report report{.source = discovery_source::dns_sd};
    auto browsed = co_await browse_dns_sd(options.dns);
    report.dns_queries = browsed.queries;
    report.dns_timeouts = browsed.timeouts;
    std::set<std::string> pinned;
    for (const auto& key : options.site_keys) {
      pinned.insert(site_key_fingerprint(key));
    }
    std::vector<udp::endpoint> relays;
    std::size_t other_key = 0;
    for (const auto& relay : browsed.relays) {
      const bool trusted =
          pinned.empty() || std::any_of(relay.key_fingerprints.begin(), relay.key_fingerprints.end(),
                                        [&](const std::string& f) { return pinned.contains(f); });
      if (!trusted) {
        ++other_key;
        spdlog::info("event=dns_sd_relay_ignored target={} domain={} reason=\"its TXT record "
                     "names no pinned site key\"",
                     relay.target, relay.domain);
        continue;
      }
      for (const auto& a : relay.addresses) {
        relays.emplace_back(a, relay.port);
      }
    }
    if (!browsed.error.empty()) {
      report.note = browsed.error;
    } else {
      std::string domains;
      for (const auto& d : browsed.domains) {
        domains += (domains.empty() ? "" : ",") + d;
      }
      report.note = std::to_string(browsed.relays.size()) + " relays under " + domains;
      if (other_key > 0) {
        report.note += ", " + std::to_string(other_key) + " ignored (another site key)";
      }
      if (browsed.timeouts > 0) {
        report.note += ", " + std::to_string(browsed.timeouts) + " queries unanswered";
      }
    }
    if (relays.empty()) {
      report.tried = true;
      report.took = since(started);
    } else if (co_await ask(report, relays, started)) {
      out.reports.push_back(std::move(report));
      found_by_unicast(discovery_source::dns_sd);
      co_return out;
    }
    out.reports.push_back(std::move(report));
  } else {
    out.reports.push_back({.source = discovery_source::dns_sd, .note = "disabled"});
  }

  if (memory) {
    const auto now = std::chrono::system_clock::now();
    memory->remember_silence(segment, now, now + options.memory_period);
  }
  out.fallback_reason = "no offers";
  co_return out;
}

}  // namespace lanrelay::agent
