#include "lanrelay/agent/discovery_client.hpp"

#include "lanrelay/segment/datagram.hpp"
#include "lanrelay/segment/query_rounds.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

namespace lanrelay::agent {

namespace net = boost::asio;

net::awaitable<discovery_result> discover(const discovery::query& query,
                                          const discovery_options& options) {
  discovery_result result;
  const auto datagram = discovery::encode(query);
  if (!datagram) {
    spdlog::warn("event=discovery_query_unencodable error=\"{}\"", datagram.error().message());
    co_return result;
  }
  auto targets = query_destinations(options.targets, options.port, options.ipv6, discovery::ipv6_group);
  result.destinations = targets.size();
  if (targets.empty()) {
    co_return result;
  }

  // Distinct senders, not URLs: one host answering with many URLs must not end the wait before
  // the others have answered.
  std::set<net::ip::address> senders;
  const auto on_reply = [&](std::span<const std::byte> bytes, const received_datagram& got) {
    auto offer = discovery::decode_offer(bytes);
    if (got.truncated || !offer || offer->transaction_id != query.transaction_id ||
        offer->sender_cookie == query.sender_cookie) {
      ++result.dropped;
      return;
    }
    auto sender = got.source.address();
    if (sender.is_v6()) {
      auto v6 = sender.to_v6();
      v6.scope_id(0);
      sender = v6;
    }
    senders.insert(sender);
    result.offers.push_back(candidate{.offer = std::move(*offer),
                                      .from = got.source,
                                      .interface_index = got.interface_index});
  };
  // Asking known addresses by unicast, we are done once each of them has answered.
  const std::size_t enough = options.targets.empty()
                                 ? options.enough_offers
                                 : std::min(options.enough_offers, options.targets.size());
  const auto done = [&] { return senders.size() >= enough; };

  const query_round_options rounds{.window = options.window,
                                   .sends = options.sends,
                                   .ipv6 = options.ipv6,
                                   .max_datagram = discovery::max_datagram,
                                   .what = "discovery"};
  // The call outside the co_await: its temporaries end before the wait (GCC 12 coroutine bug).
  auto rounds_done = query_rounds(*datagram, std::move(targets), rounds, on_reply, done);
  const auto counts = co_await std::move(rounds_done);
  result.send_errors = counts.send_errors;
  co_return result;
}

}  // namespace lanrelay::agent
