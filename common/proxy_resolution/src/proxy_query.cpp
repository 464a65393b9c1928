#include "lanrelay/proxy_resolution/proxy_query.hpp"

#include "lanrelay/base/machine_cookie.hpp"
#include "lanrelay/segment/query_rounds.hpp"

#include <spdlog/spdlog.h>

namespace lanrelay::proxy_resolution {

namespace net = boost::asio;
namespace proxy = proxy_protocol;

net::awaitable<proxy_query_result> ask_for_proxies(proxy_query_options options) {
  proxy_query_result result;
  const auto start = std::chrono::steady_clock::now();
  const proxy::query query{random_u64(), random_u64()};
  const auto datagram = proxy::encode(query);
  auto targets = query_destinations(options.targets, options.port, options.ipv6, proxy::ipv6_group);
  result.destinations = targets.size();
  if (targets.empty()) {
    co_return result;  // no interface with broadcast or multicast: nobody to ask
  }
  if (options.trust.accept_unsigned) {
    spdlog::warn("event=unsigned_proxy_answers_accepted hint=\"explicit opt-in: any machine on "
                 "this segment can choose this agent's proxy\"");
  }

  const auto on_reply = [&](std::span<const std::byte> bytes, const received_datagram& got) {
    if (result.accepted) {
      return;  // the first answer that passes decides
    }
    auto answer = proxy::decode_answer(bytes);
    if (got.truncated || !answer || answer->transaction_id != query.transaction_id ||
        answer->sender_cookie == query.sender_cookie) {
      return;  // not an answer to this query
    }
    ++result.answers;
    const auto checked = proxy::check_answer(*answer, bytes, query.transaction_id, options.trust,
                                             std::chrono::system_clock::now());
    if (!checked) {
      result.refused.push_back(got.source.address().to_string() + ": " +
                               checked.error().message());
      spdlog::warn("event=proxy_answer_refused from={} reason=\"{}\"", got.source.address().to_string(),
                   checked.error().message());
      return;
    }
    result.accepted = std::move(*answer);
    result.answered_by = got.source;
    result.answered_on = got.interface_index;
  };
  const auto done = [&] { return result.accepted.has_value(); };

  const query_round_options rounds{.window = options.window,
                                   .sends = options.sends,
                                   .ipv6 = options.ipv6,
                                   .max_datagram = proxy::max_datagram,
                                   .what = "proxy"};
  // The call outside the co_await: its temporaries end before the wait (GCC 12 coroutine bug).
  auto rounds_done = query_rounds(datagram, std::move(targets), rounds, on_reply, done);
  const auto counts = co_await std::move(rounds_done);
  result.send_errors = counts.send_errors;
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  co_return result;
}

}  // namespace lanrelay::proxy_resolution
