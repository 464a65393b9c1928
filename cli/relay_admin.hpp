#pragma once

// Talking to a running lanrelayd's HTTP endpoints from the command line (`lanrelay mirror ...`):
// one request, one response, deadlines on everything.

#include <chrono>
#include <string>
#include <string_view>

namespace lanrelay::cli {

struct relay_address {
  std::string host = "127.0.0.1";
  std::string port = "4127";
};

// "HOST", "HOST:PORT", "[V6]:PORT". Throws command_error when malformed.
relay_address parse_relay_address(std::string_view text);

struct relay_reply {
  unsigned status = 0;
  std::string body;
};

// Sends `method target` to the relay and returns its answer. Throws command_error (with what to
// do) when the relay cannot be reached or does not answer within `timeout`. A non-empty
// `admin_token` is sent as `Authorization: Bearer <token>` (admin endpoints, [admin] token).
relay_reply relay_request(const relay_address& relay, std::string_view method,
                          std::string_view target, std::chrono::seconds timeout,
                          std::string_view admin_token = {});

// The admin token for endpoints that change the relay: $LANRELAY_ADMIN_TOKEN, else the first line
// of `token_file` when given. Empty when neither is set (the relay then answers 401 or 403).
std::string admin_token(const std::string& token_file);

}  // namespace lanrelay::cli
