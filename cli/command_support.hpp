#pragma once

// Helpers shared by the agent-side commands (fetch, discover, update).

#include "lanrelay/base/duration_option.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace lanrelay::cli {

// Runs one coroutine to completion on its own io_context.
template <typename T>
T run_to_completion(boost::asio::awaitable<T> task) {
  boost::asio::io_context ioc;
  std::optional<T> out;
  std::exception_ptr failure;
  boost::asio::co_spawn(ioc, std::move(task), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) {
      out.emplace(std::move(value));
    }
  });
  ioc.run();
  if (failure) {
    std::rethrow_exception(failure);
  }
  return std::move(*out);
}

// The duration grammar of configuration files (base/duration.hpp): "500ms", "2s", "10m",
// "1h" or "0"; nullopt for anything else. Options taking one also carry duration_validator(),
// so CLI11 refuses a bad value before a command runs.
inline std::optional<std::chrono::milliseconds> parse_duration_ms(std::string_view text) {
  return parse_duration(text);
}

// "16KiB", "1MiB", "512B" or a bare number of bytes; nullopt for anything else.
inline std::optional<std::uint64_t> parse_bytes(std::string_view text) {
  std::uint64_t factor = 1;
  if (text.ends_with("KiB")) {
    text.remove_suffix(3);
    factor = 1024;
  } else if (text.ends_with("MiB")) {
    text.remove_suffix(3);
    factor = 1024 * 1024;
  } else if (text.ends_with("B")) {
    text.remove_suffix(1);
  }
  if (text.empty() || text.size() > 12 ||
      text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  return std::stoull(std::string(text)) * factor;
}

}  // namespace lanrelay::cli
