#pragma once

// Helpers for tests that run the real lanrelayd: start it on 127.0.0.1 with port 0 and a temporary
// state directory, and talk to it over raw loopback sockets with poll(2) deadlines, so that no
// test can hang. Responses are parsed with Beast's parser.

#include "lanrelay/content/store.hpp"
#include "process.hpp"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <stdexcept>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace lanrelay::test {

namespace http = boost::beast::http;
using namespace std::chrono_literals;

inline std::string random_bytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t word = random();
    std::memcpy(out.data() + i, &word, std::min<std::size_t>(8, size - i));
  }
  return out;
}

// A loopback TCP connection with deadline-bounded I/O.
class raw_connection {
 public:
  // `receive_buffer` > 0 sets SO_RCVBUF before connecting (a slow reader). `source` (e.g.
  // "127.0.0.7"; loopback owns all of 127.0.0.0/8) makes the connection come from that address, so
  // one test can be several clients.
  explicit raw_connection(std::uint16_t port, int receive_buffer = 0, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    if (source != nullptr) {
      sockaddr_in from{};
      from.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &from.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
        return;  // connected() stays false
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    const int flags = ::fcntl(fd_, F_GETFL);
    ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
  }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;
  ~raw_connection() { close(); }

  bool connected() const noexcept { return connected_; }
  int fd() const noexcept { return fd_; }

  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  bool send_all(std::string_view data, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
      if (!wait(POLLOUT, deadline)) {
        return false;
      }
    }
    return true;
  }

  enum class read_status { data, closed, timeout };

  // Reads what is available, waiting until `deadline` for something; appends to `out`.
  read_status read_some(std::string& out, std::chrono::steady_clock::time_point deadline,
                        std::size_t max = 64 * 1024) {
    for (;;) {
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, max), 0);
      if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        return read_status::data;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        return read_status::closed;  // FIN or RST
      }
      if (!wait(POLLIN, deadline)) {
        return read_status::timeout;
      }
    }
  }

  // Waits for the peer to close; true when it did before `timeout` (data read is discarded).
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string sink;
    for (;;) {
      sink.clear();
      switch (read_some(sink, deadline)) {
        case read_status::closed:
          return true;
        case read_status::timeout:
          return false;
        case read_status::data:
          break;
      }
    }
  }

  struct response {
    bool complete = false;
    http::response<http::string_body> message;
  };

  // Reads one response; `head_only` for a HEAD request (the body is not sent).
  response read_response(std::chrono::milliseconds timeout = 10s, bool head_only = false) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.skip(head_only);
    parser.body_limit(1ULL << 30);
    response out;
    for (;;) {
      if (!pending_.empty()) {
        boost::system::error_code ec;
        const std::size_t used =
            parser.put(boost::asio::buffer(pending_.data(), pending_.size()), ec);
        pending_.erase(0, used);
        if (ec && ec != http::error::need_more) {
          ADD_FAILURE() << "unparsable response: " << ec.message();
          return out;
        }
        if (parser.is_done()) {
          out.complete = true;
          out.message = parser.release();
          return out;
        }
        if (!ec && used > 0) {
          continue;
        }
      }
      switch (read_some(pending_, deadline)) {
        case read_status::data:
          break;
        case read_status::closed: {
          if (!parser.got_some()) {
            return out;  // closed before a single byte of response
          }
          boost::system::error_code ec;
          parser.put_eof(ec);
          if (!ec && parser.is_done()) {
            out.complete = true;
            out.message = parser.release();
          }
          return out;
        }
        case read_status::timeout:
          return out;
      }
    }
  }

  // Reads exactly `size` bytes of body that follow a response head read with read_head().
  std::string& pending() noexcept { return pending_; }

  // Reads up to the end of the response head; returns the head text (without the blank line).
  std::optional<std::string> read_head(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto end = pending_.find("\r\n\r\n"); end != std::string::npos) {
        std::string head = pending_.substr(0, end);
        pending_.erase(0, end + 4);
        return head;
      }
      if (read_some(pending_, deadline, 256) != read_status::data) {
        return std::nullopt;
      }
    }
  }

 private:
  bool wait(short events, std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd_, events, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) > 0;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

// A running lanrelayd on 127.0.0.1 with a fresh state directory; killed by the destructor.
class relayd {
 public:
  // `config_toml`: settings written to a config file (state dir and address come as options).
  // `max_open_files` > 0 starts the daemon with that RLIMIT_NOFILE. `environment`: extra
  // NAME=value entries (NOTIFY_SOCKET for the service-manager protocol). `state_dir`: instead of
  // one inside the temporary directory (e.g. on a filesystem the test made).
  explicit relayd(const std::string& config_toml = "", std::vector<std::string> extra_args = {},
                  rlim_t max_open_files = 0, std::vector<std::string> environment = {},
                  std::filesystem::path state_dir = {}) {
    char pattern[] = "/tmp/lanrelay-relayd.XXXXXX";
    if (::mkdtemp(pattern) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    dir_ = pattern;
    state_ = state_dir.empty() ? dir_ / "state" : state_dir;
    log_ = dir_ / "relayd.log";
    // Discovery stays off: it would bind UDP on every interface, and these tests talk to
    // 127.0.0.1 only.
    const auto config = dir_ / "relayd.toml";
    std::ofstream(config) << "[discovery]\nenabled = false\n" << config_toml;
    std::vector<std::string> argv{LANRELAYD_PATH, "--config", config.string(), "--state-dir",
                                  state_.string(), "--listen", "127.0.0.1", "--port", "0",
                                  "--https-port", "0", "--log-level", "debug"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    rlimit saved{};
    ::getrlimit(RLIMIT_NOFILE, &saved);
    if (max_open_files > 0) {
      rlimit low = saved;
      low.rlim_cur = max_open_files;
      ::setrlimit(RLIMIT_NOFILE, &low);  // inherited by the child; restored right after fork
    }
    process_ = process(argv, process::options{.output = log_, .environment = environment});
    ::setrlimit(RLIMIT_NOFILE, &saved);
    const bool listening = eventually(10s, [&] {
      return read_file(log_).find("listening on ") != std::string::npos || !alive();
    });
    const std::string log = read_file(log_);
    const auto at = log.find("listening on ");
    if (!listening || at == std::string::npos) {
      throw std::runtime_error("lanrelayd did not start:\n" + log);
    }
    const auto line_end = log.find('\n', at);
    const std::string line = log.substr(at, line_end - at);
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
    // "https on 127.0.0.1:<port> certificate sha256 <hex>", printed before "listening on".
    if (const auto https = log.find("https on "); https != std::string::npos && https < at) {
      const auto https_line = log.substr(https, log.find('\n', https) - https);
      const auto colon = https_line.find(':');
      https_port_ = static_cast<std::uint16_t>(std::stoi(https_line.substr(colon + 1)));
      const auto sha = https_line.find("sha256 ");
      if (sha != std::string::npos) {
        certificate_sha256_ = https_line.substr(sha + 7);
      }
    }

    auto store = content_store::open({state_ / "cache", 0});
    if (!store) {
      throw std::runtime_error("cannot open the daemon's store: " + store.error().message());
    }
    store_ = std::move(*store);
  }
  relayd(const relayd&) = delete;
  relayd& operator=(const relayd&) = delete;
  ~relayd() {
    store_.reset();
    process_.kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::uint16_t port() const noexcept { return port_; }
  // The HTTPS listener (0 when https.enabled is off) and its certificate's fingerprint (hex).
  std::uint16_t https_port() const noexcept { return https_port_; }
  const std::string& certificate_sha256() const noexcept { return certificate_sha256_; }
  content_store& store() { return *store_; }
  process& proc() { return process_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  // The configuration file the daemon was started with (a reload re-reads it).
  std::filesystem::path config_file() const { return dir_ / "relayd.toml"; }
  std::string log() const { return read_file(log_); }

  // False once the daemon has exited (its wait status is then kept for wait_exit()).
  bool alive() {
    if (exit_status_ || !process_.running()) {
      return false;
    }
    exit_status_ = process_.wait_for(0ms);
    return !exit_status_;
  }

  item add(item_key key, std::string_view bytes) {
    auto writer = store_->begin_add(std::move(key));
    if (!writer) {
      throw std::runtime_error("begin_add: " + writer.error().message());
    }
    if (auto written = writer->write(std::as_bytes(std::span(bytes.data(), bytes.size())));
        !written) {
      throw std::runtime_error("write: " + written.error().message());
    }
    auto committed = writer->commit(bytes.size(), std::nullopt);
    if (!committed) {
      throw std::runtime_error("commit: " + committed.error().message());
    }
    return *committed;
  }

  // One request on a fresh connection.
  raw_connection::response request(std::string_view method, std::string_view target,
                                   std::string_view extra_headers = "") {
    raw_connection c(port_);
    EXPECT_TRUE(c.connected());
    std::string text = std::string(method) + " " + std::string(target) +
                       " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(extra_headers) + "\r\n";
    EXPECT_TRUE(c.send_all(text));
    return c.read_response(10s, method == "HEAD");
  }

  boost::json::object stats() {
    auto res = request("GET", "/-/stats");
    if (!res.complete || res.message.result() != http::status::ok) {
      ADD_FAILURE() << "GET /-/stats failed";
      return {};
    }
    return boost::json::parse(res.message.body()).as_object();
  }

  std::uint64_t stat(std::string_view name) {
    const auto s = stats();
    const auto* value = s.if_contains(name);
    return value != nullptr ? value->to_number<std::uint64_t>() : ~0ULL;
  }

  // The first entry of /-/mirror once the source's first sync has ended: failed (last_error set)
  // or mirrored files. A failure of the test when that takes longer than `timeout`.
  boost::json::object first_sync_result(std::chrono::milliseconds timeout = 60s) {
    boost::json::object entry;
    EXPECT_TRUE(eventually(timeout, [&] {
      auto status = request("GET", "/-/mirror");
      boost::system::error_code ec;
      const auto v = boost::json::parse(status.message.body(), ec);
      if (ec || !v.is_array() || v.as_array().empty()) {
        return false;
      }
      entry = v.at(0).as_object();
      const auto& error = entry.at("last_error");
      return !entry.at("syncing").as_bool() &&
             ((error.is_string() && !error.as_string().empty()) ||
              entry.at("files").to_number<int>() > 0);
    })) << log();
    return entry;
  }

  // Waits for the process to exit; the wait status, nullopt if it still runs.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (!exit_status_ && process_.running()) {
      exit_status_ = process_.wait_for(timeout);
    }
    return exit_status_;
  }

 private:
  std::filesystem::path dir_;
  std::filesystem::path state_;
  std::filesystem::path log_;
  process process_;
  std::unique_ptr<content_store> store_;
  std::uint16_t port_ = 0;
  std::uint16_t https_port_ = 0;
  std::string certificate_sha256_;
  std::optional<int> exit_status_;
};

}  // namespace lanrelay::test
