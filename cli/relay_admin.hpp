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
// do) when the relay cannot be reached or does not answer within `timeout`.
relay_reply relay_request(const relay_address& relay, std::string_view method,
                          std::string_view target, std::chrono::seconds timeout);

}  // namespace lanrelay::cli
