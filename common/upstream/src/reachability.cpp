#include "lanrelay/upstream/reachability.hpp"

#include <boost/system/errc.hpp>

namespace lanrelay {

namespace net = boost::asio;

std::string reachability::describe() const {
  if (status == 0) {
    return !error_text.empty() ? error_text : error ? error.message() : "no answer";
  }
  std::string text = "HTTP " + std::to_string(status);
  if (status == 407) {
    text += " (the proxy wants credentials)";
  } else if (status >= 500) {
    text += " (the proxy or server could not serve the target)";
  }
  return text;
}

net::awaitable<reachability> check_reachable(reachability_request request) {
  fetch_request fetch;
  fetch.url = request.target;
  fetch.proxy = request.proxy;
  fetch.tls = request.tls;
  fetch.timeouts = {request.timeout, request.timeout, request.timeout};

  // The sink runs only for a 200 or 206: the head is enough, so the transfer stops at the first
  // body bytes.
  bool body_started = false;
  const auto stop = boost::system::errc::make_error_code(boost::system::errc::operation_canceled);
  const auto started = std::chrono::steady_clock::now();
  auto outcome = co_await http_fetch(fetch, [&](std::span<const std::byte>) -> result<void> {
    body_started = true;
    return stop;
  });
  reachability r;
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (outcome) {
    r.status = outcome->status;
  } else if (body_started && outcome.error() == stop) {
    r.status = 200;
  } else {
    r.error = outcome.error();
    r.error_text = describe_fetch_error(fetch, r.error);
    co_return r;
  }
  r.reachable = r.status < 500 && r.status != 407;
  co_return r;
}

}  // namespace lanrelay
