#pragma once

// "Can this machine talk to that server, directly or through this proxy?" One HTTP GET that stops
// at the response head: used by proxyhelperd's health checks (an https:// probe target goes
// through the proxy's CONNECT tunnel, TLS end to end) and by the agent's proxy resolution (the
// connectivity check to the target).
//
// Reachable means an HTTP response came back from the far end: any status below 500 except 407
// (the proxy wants credentials). A 5xx is what proxies answer when they cannot reach the target
// (502, 503, 504), so it counts as unreachable. Never reads more than the first chunk of a body.

#include "lanrelay/upstream/http_client.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/url/url.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace lanrelay {

struct reachability_request {
  boost::urls::url target;
  std::optional<proxy_settings> proxy;       // direct when empty
  std::chrono::milliseconds timeout{3'000};  // each step: connect (+ tunnel + TLS), response head
  tls_options tls;
};

struct reachability {
  bool reachable = false;
  unsigned status = 0;              // HTTP status, 0 when none came back
  boost::system::error_code error;  // the failure when no status came back
  // The failure in describe_fetch_error's words, naming the hop that failed ("TLS to the proxy
  // at proxy:3129 failed: ..."); empty when a status came back.
  std::string error_text;
  std::chrono::milliseconds elapsed{0};

  // "HTTP 200", "HTTP 502 (the proxy could not reach the target)", or error_text (the error's
  // message when that is empty).
  std::string describe() const;
};

// Takes `request` by value: the coroutine owns it whenever it starts.
boost::asio::awaitable<reachability> check_reachable(reachability_request request);

}  // namespace lanrelay
