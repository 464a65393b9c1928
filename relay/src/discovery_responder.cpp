#include "lanrelay/relay/discovery_responder.hpp"

#include "lanrelay/content/partial_items.hpp"

#include "lanrelay/relay/mirror_service.hpp"
#include "lanrelay/relay/parent_chain.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/relay/request_target.hpp"
#include "lanrelay/segment/datagram.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

namespace lanrelay::relay {
namespace {

namespace net = boost::asio;
using udp = net::ip::udp;

std::string item_url(const std::string& host, std::uint16_t port, std::string_view path) {
  return "http://" + host + ":" + std::to_string(port) + std::string(path);
}

// discovery.unicast_networks, as validated by the configuration (an entry that does not parse
// was refused there; none is answered here).
network_list unicast_networks(const discovery_settings& s) {
  auto parsed = network_list::parse(s.unicast_networks);
  return parsed ? std::move(*parsed) : network_list{};
}

// The address an answer leaves from: the one a routed query was sent to (unicast networks),
// else the one the offer's URL names for an on-link querier (answer_source: over IPv6 a routable
// address of the arrival interface, else its link-local one).
net::ip::address reply_from(const network_interface* arrival, const received_datagram& got) {
  const auto routed = responder_core::reply_source(got.source, arrival, got.destination);
  return routed.is_unspecified() ? answer_source(arrival, got.source.address()) : routed;
}

}  // namespace

responder_core::responder_core(settings s, content_store& store,
                               std::function<std::uint16_t()> free_slots,
                               responder_counters& counters, const mirror_service* mirrors,
                               parent_chain* parents)
    : settings_(s),
      store_(store),
      free_slots_(std::move(free_slots)),
      counters_(counters),
      mirrors_(mirrors),
      parents_(parents),
      guard_({settings_.cookie, settings_.rate_limit, settings_.new_source_rate,
              settings_.unicast_networks},
             counters_) {}

std::optional<std::string> responder_core::url_host(const network_interface& arrival,
                                                    const net::ip::address& source) const {
  // The URL names the address the offer is sent from: agents use only offers whose URL host is
  // their sender (agent/offer_selection.hpp). An IPv6 query is answered from a routable address
  // of the arrival interface when it has one, else from its link-local address
  // (answer_source; receive_loop sends from the same address). The URL carries no zone:
  // the agent connects through the interface the offer arrived on.
  if (const auto from = answer_source(&arrival, source); !from.is_unspecified()) {
    return "[" + from.to_string() + "]";
  }
  // An IPv4 query: the address on the sender's own subnet, the one the kernel answers from.
  const ipv4_binding* chosen = arrival.ipv4.empty() ? nullptr : &arrival.ipv4.front();
  if (source.is_v4()) {
    const auto peer = source.to_v4().to_uint();
    for (const auto& binding : arrival.ipv4) {
      const auto mask = binding.network.netmask().to_uint();
      if ((peer & mask) == (binding.network.address().to_uint() & mask)) {
        chosen = &binding;
        break;
      }
    }
  }
  if (chosen != nullptr) {
    // Formatting an address is costly next to answering a query: remember the text.
    const auto address = chosen->network.address().to_uint();
    auto [it, inserted] = host_texts_.try_emplace(address);
    if (inserted) {
      it->second = chosen->network.address().to_string();
    }
    return it->second;
  }
  return std::nullopt;
}

std::optional<std::vector<std::byte>> responder_core::process_packet(
    std::span<const std::byte> datagram, const udp::endpoint& source,
    const network_interface* arrival, std::chrono::steady_clock::time_point now) {
  return process_packet(datagram, source, arrival, net::ip::address(), now);
}

net::ip::address responder_core::reply_source(const udp::endpoint& source,
                                              const network_interface* arrival,
                                              const net::ip::address& arrived_at) {
  if (arrival == nullptr || arrived_at.is_unspecified() || arrived_at.is_multicast() ||
      arrival->is_on_link(source.address())) {
    return {};
  }
  if (arrived_at.is_v4()) {
    // A directed or limited broadcast is never routed to us; still, never answer "from" one.
    for (const auto& binding : arrival->ipv4) {
      if (binding.broadcast && *binding.broadcast == arrived_at.to_v4()) {
        return {};
      }
    }
    if (arrived_at.to_v4() == net::ip::address_v4::broadcast()) {
      return {};
    }
  }
  return arrived_at;
}

std::optional<std::vector<std::byte>> responder_core::process_packet(
    std::span<const std::byte> datagram, const udp::endpoint& source,
    const network_interface* arrival, const net::ip::address& arrived_at,
    std::chrono::steady_clock::time_point now) {
  auto q = discovery::decode_query(datagram);
  const auto cookie = q ? std::optional(q->sender_cookie) : std::nullopt;
  if (guard_.admit(cookie, source, arrival, now) != responder_guard::verdict::admitted) {
    return std::nullopt;
  }
  ++counters_.queries;

  auto held = store_.find_satisfying(q->kind, q->name, q->version);
  if (q->sha256) {
    const auto mismatched =
        std::erase_if(held, [&](const item& it) { return it.sha256 != *q->sha256; });
    if (mismatched > 0 && held.empty()) {
      ++counters_.digest_mismatches;
    }
  }
  std::vector<mirrored_item> mirrored;
  if (held.empty() && mirrors_ != nullptr) {
    mirrored = mirrors_->find(q->kind, q->name, q->version);
    if (q->sha256) {
      std::erase_if(mirrored, [&](const mirrored_item& m) { return m.entry.sha256 != *q->sha256; });
    }
  }
  // A routed sender (admitted through the unicast networks) asked the address it found by DNS
  // or its address plan: the offer names that address, and is sent from it.
  const auto routed_from = reply_source(source, arrival, arrived_at);
  const auto host = !routed_from.is_unspecified()
                        ? std::optional<std::string>(routed_from.is_v6()
                                                         ? "[" + routed_from.to_string() + "]"
                                                         : routed_from.to_string())
                        : url_host(*arrival, source.address());
  // A swarming agent (partial_ok) may also take pieces of an item this peer is still downloading.
  std::optional<partial_item> partial;
  if (held.empty() && mirrored.empty() && q->partial_ok) {
    for (auto& p : find_partial_items(store_.dir(), q->kind, q->name)) {
      if (p.have.held() > 0 && version_satisfies(q->kind, p.key.version, q->version) &&
          (!q->sha256 || *q->sha256 == p.sha256)) {
        partial = std::move(p);
        break;
      }
    }
    if (partial) {
      held.push_back(item{.key = partial->key, .size = partial->pieces.item_size,
                          .sha256 = partial->sha256});
    }
  }
  // Nothing here: a parent's remembered answer, or a question to the parents for the agent's
  // next round (the parent's offer itself is never passed on: agents use only URLs naming
  // their sender, and this relay serves the item itself).
  std::optional<item> chained;
  if (held.empty() && mirrored.empty() && parents_ != nullptr && host) {
    if (auto p = parents_->find(*q)) {
      chained = item{.key = p->key, .size = p->size, .sha256 = p->sha256};
      ++counters_.parent_offers;
    } else {
      parents_->ask(*q);
    }
  }
  if ((held.empty() && mirrored.empty() && !chained) || !host) {
    ++counters_.not_held;
    return std::nullopt;
  }
  const item& best = !held.empty() ? held.front() : chained ? *chained : mirrored.front().entry;
  const std::string path =
      held.empty() && !chained ? mirrored.front().url_path : cache_path(best.key);
  discovery::offer o;
  o.transaction_id = q->transaction_id;
  o.sender_cookie = settings_.cookie;
  o.role = settings_.role;
  o.kind = best.key.kind;
  o.name = best.key.name;
  o.version = best.key.version;
  o.size = best.size;
  o.sha256 = best.sha256;
  o.url = item_url(*host, settings_.http_port, path);
  o.free_slots = free_slots_();
  if (partial) {
    o.pieces_held = static_cast<std::uint32_t>(partial->have.held());
  }
  auto encoded = discovery::encode(o, datagram.size());
  if (!encoded) {
    ++counters_.reply_too_large;
    return std::nullopt;
  }
  count_fallbacks(*q);
  return std::move(*encoded);
}

void responder_core::count_fallbacks(const discovery::query& q) {
  if (q.fallbacks.empty() || settings_.role != discovery::responder_role::relay) {
    return;
  }
  const std::pair key{q.sender_cookie, q.transaction_id};
  if (std::find(reported_.begin(), reported_.end(), key) != reported_.end()) {
    return;  // a retransmission of a query already counted
  }
  reported_[next_reported_] = key;
  next_reported_ = (next_reported_ + 1) % reported_.size();
  for (const auto& f : q.fallbacks) {
    const auto index = static_cast<std::size_t>(f.reason) - 1;
    if (index < counters_.agent_fallbacks.size()) {
      counters_.agent_fallbacks[index].fetch_add(
          std::min(f.count, discovery::max_reported_fallbacks), std::memory_order_relaxed);
    }
  }
}

discovery_responder::discovery_responder(net::io_context& ioc, const relay_config& config,
                                         content_store& store, std::uint16_t http_port,
                                         std::uint64_t cookie,
                                         std::function<std::uint16_t()> free_slots,
                                         responder_counters& counters,
                                         const mirror_service* mirrors, parent_chain* parents)
    : strand_(net::make_strand(ioc)),
      settings_(config.discovery),
      counters_(counters),
      core_(responder_core::settings{cookie,
                                     config.role == "peer" ? discovery::responder_role::peer
                                                           : discovery::responder_role::relay,
                                     http_port, config.discovery.rate_limit,
                                     config.discovery.new_source_rate,
                                     unicast_networks(config.discovery)},
            store, std::move(free_slots), counters_, mirrors, parents),
      gate_(counters_),
      // Queries arrive in bursts (every agent checks at the top of the hour): queue plenty.
      listener_(strand_, segment_listener::options{.port = settings_.port,
                                                   .ipv6 = settings_.ipv6,
                                                   .group = std::string(discovery::ipv6_group),
                                                   .protocol = "discovery",
                                                   .rescan_interval = settings_.interface_rescan,
                                                   .receive_buffer = 4 << 20}) {}

bool discovery_responder::start() {
  if (!listener_.open()) {
    return false;
  }

  listener_.start_rescans();
  const auto spawn = [this](net::awaitable<void> loop, std::string_view what) {
    net::co_spawn(strand_, std::move(loop),
                  log_failure(what));
  };
  if (listener_.v4()) {
    spawn(receive_loop(*listener_.v4()), "ipv4 receive loop");
  }
  if (listener_.v6()) {
    spawn(receive_loop(*listener_.v6()), "ipv6 receive loop");
  }
  spdlog::info("event=discovery_listening port={} ipv4={} ipv6={}", listener_.port(),
               listener_.v4().has_value(), listener_.v6().has_value());
  return true;
}

void discovery_responder::set_rate_limit(std::uint32_t per_second) {
  net::dispatch(strand_, [this, per_second] { core_.set_rate_limit(per_second); });
}

void discovery_responder::stop() {
  net::dispatch(strand_, [this] {
    stopped_ = true;
    listener_.close();
  });
}

net::awaitable<void> discovery_responder::receive_loop(udp::socket& socket) {
  // Datagrams are read and answered in batches (recvmmsg/sendmmsg): one system call each way
  // for up to `batch` queries.
  constexpr std::size_t batch = 32;
  std::vector<std::byte> storage(batch * discovery::max_datagram);
  std::vector<std::span<std::byte>> buffers;
  for (std::size_t i = 0; i < batch; ++i) {
    buffers.emplace_back(storage.data() + i * discovery::max_datagram, discovery::max_datagram);
  }
  std::vector<received_datagram> received;
  std::vector<std::vector<std::byte>> replies;
  std::vector<outgoing_datagram> outgoing;
  replies.reserve(batch);
  outgoing.reserve(batch);

  while (!stopped_) {
    auto [ec] = co_await socket.async_wait(udp::socket::wait_read, net::as_tuple(net::use_awaitable));
    if (ec || stopped_) {
      co_return;
    }
    while (!receive_datagrams(socket, buffers, received)) {
      replies.clear();
      outgoing.clear();
      const auto now = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < received.size(); ++i) {
        const auto& got = received[i];
        if (got.truncated) {
          ++counters_.malformed;
          continue;
        }
        const network_interface* arrival = listener_.find_interface(got.interface_index);
        auto reply = core_.process_packet(buffers[i].first(got.size), got.source, arrival,
                                          got.destination, now);
        if (reply) {
          replies.push_back(std::move(*reply));
          outgoing.push_back({replies.back(), got.source, got.interface_index,
                              reply_from(arrival, got)});
        }
      }
      std::size_t refused = 0;
      counters_.offers_sent += gate_.send(socket, outgoing, now, refused);
      counters_.send_errors += refused;
    }
  }
}

}  // namespace lanrelay::relay
