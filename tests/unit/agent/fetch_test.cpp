// agent::fetch against scripted holders on loopback: each holder is a UDP responder that offers
// the item and an HTTP server that behaves as the test says (busy, drops the connection halfway,
// serves honestly). Unicast discovery to 127.0.0.x only.

#include "lanrelay/agent/fetch.hpp"
#include "lanrelay/content/piece_list.hpp"

#include "free_port.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

namespace lanrelay::agent {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

enum class behaviour {
  busy,
  drop_halfway,  // sends half of the item and closes
  honest,
  corrupt,       // the whole item with one byte changed at 1.5 MiB (in piece 1 of 1 MiB pieces)
  trickle,       // the head, then one byte every 100 ms
};

// One holder at 127.0.0.<host>: offers the item on UDP `discovery_port`, serves it over HTTP.
class scripted_holder {
 public:
  // `pieces`: the encoded piece list served at /-/pieces/<sha256>; empty: 404 there.
  scripted_holder(std::uint8_t host, std::uint16_t discovery_port, behaviour how, std::string content,
                  std::uint16_t free_slots, std::string pieces = {})
      : address_("127.0.0." + std::to_string(host)),
        how_(how),
        content_(std::move(content)),
        pieces_(std::move(pieces)) {
    udp_ = bind_socket(SOCK_DGRAM, discovery_port);
    tcp_ = bind_socket(SOCK_STREAM, 0);
    ::listen(tcp_, 8);
    sockaddr_in bound{};
    socklen_t len = sizeof bound;
    ::getsockname(tcp_, reinterpret_cast<sockaddr*>(&bound), &len);
    http_port_ = ntohs(bound.sin_port);
    free_slots_ = free_slots;
    thread_ = std::thread([this] { serve(); });
  }
  ~scripted_holder() {
    stop_ = true;
    thread_.join();
    ::close(udp_);
    ::close(tcp_);
  }

  std::string range_header() {
    std::lock_guard lock(mutex_);
    return range_;
  }
  int requests() const { return requests_; }
  int item_requests() const { return item_requests_; }

 private:
  int bind_socket(int type, std::uint16_t port) {
    const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, address_.c_str(), &addr.sin_addr);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << address_;
    return fd;
  }

  void serve() {
    while (!stop_) {
      pollfd fds[2] = {{udp_, POLLIN, 0}, {tcp_, POLLIN, 0}};
      if (::poll(fds, 2, 50) <= 0) {
        continue;
      }
      if (fds[0].revents & POLLIN) {
        answer_query();
      }
      if (fds[1].revents & POLLIN) {
        serve_connection();
      }
    }
  }

  void answer_query() {
    std::array<std::byte, 1500> buffer{};
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const auto n = ::recvfrom(udp_, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    auto q = discovery::decode_query(std::span(buffer.data(), static_cast<std::size_t>(n)));
    if (!q) {
      return;
    }
    discovery::offer o;
    o.transaction_id = q->transaction_id;
    o.sender_cookie = 1000 + http_port_;
    o.role = discovery::responder_role::peer;
    o.kind = q->kind;
    o.name = q->name;
    o.version = q->version;
    o.size = content_.size();
    o.sha256 = sha256_of(std::as_bytes(std::span(content_)));
    o.url = "http://" + address_ + ":" + std::to_string(http_port_) + "/cache/file/item/1";
    o.free_slots = free_slots_;
    const auto datagram = discovery::encode(o, static_cast<std::size_t>(n)).value();
    ::sendto(udp_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
  }

  void serve_connection() {
    const int fd = ::accept(tcp_, nullptr, nullptr);
    ++requests_;
    std::string head;
    char buffer[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) != 1) {
        break;
      }
      const auto n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) {
        break;
      }
      head.append(buffer, static_cast<std::size_t>(n));
    }
    if (head.starts_with("GET /-/pieces/")) {
      const std::string response =
          pieces_.empty()
              ? std::string("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
              : "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(pieces_.size()) +
                    "\r\nConnection: close\r\n\r\n" + pieces_;
      ::send(fd, response.data(), response.size(), MSG_NOSIGNAL);
      ::close(fd);
      return;
    }
    ++item_requests_;
    std::uint64_t from = 0;
    if (const auto at = head.find("Range: bytes="); at != std::string::npos) {
      std::lock_guard lock(mutex_);
      range_ = head.substr(at, head.find("\r\n", at) - at);
      from = std::stoull(head.substr(at + 13));
    }
    std::string response;
    if (how_ == behaviour::trickle) {
      response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(content_.size()) +
                 "\r\nConnection: close\r\n\r\n";
      ::send(fd, response.data(), response.size(), MSG_NOSIGNAL);
      for (std::size_t i = 0; i < content_.size() && !stop_; ++i) {
        if (::send(fd, content_.data() + i, 1, MSG_NOSIGNAL) != 1) {
          break;
        }
        ::poll(nullptr, 0, 100);
      }
      ::close(fd);
      return;
    }
    if (how_ == behaviour::corrupt) {
      std::string bad = content_;
      bad[(3 << 20) / 2] ^= 0x55;
      response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(bad.size()) +
                 "\r\nConnection: close\r\n\r\n" + bad.substr(from);
    } else if (how_ == behaviour::busy) {
      response = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    } else if (how_ == behaviour::drop_halfway) {
      response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(content_.size()) +
                 "\r\nConnection: close\r\n\r\n" + content_.substr(0, content_.size() / 2);
    } else if (from > 0) {
      response = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(from) + "-" +
                 std::to_string(content_.size() - 1) + "/" + std::to_string(content_.size()) +
                 "\r\nContent-Length: " + std::to_string(content_.size() - from) +
                 "\r\nConnection: close\r\n\r\n" + content_.substr(from);
    } else {
      response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(content_.size()) +
                 "\r\nConnection: close\r\n\r\n" + content_;
    }
    ::send(fd, response.data(), response.size(), MSG_NOSIGNAL);
    ::close(fd);  // drop_halfway: the client sees the connection end early
  }

  std::string address_;
  behaviour how_;
  std::string content_;
  std::string pieces_;
  int udp_ = -1;
  int tcp_ = -1;
  std::uint16_t http_port_ = 0;
  std::uint16_t free_slots_ = 1;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> item_requests_{0};
  std::mutex mutex_;
  std::string range_;
  std::thread thread_;
};

class fetch_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-fetch.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    content_.resize(3 << 20);
    for (std::size_t i = 0; i < content_.size(); ++i) {
      content_[i] = static_cast<char>((i * 7919) >> 3);
    }
    // A discovery port of our own, free on every 127.0.0.x address we use.
    port_ = test::free_port(SOCK_DGRAM);
    const auto list = encode(built_pieces());
    pieces_.assign(reinterpret_cast<const char*>(list.data()), list.size());
  }

  // The content's piece list at the default 1 MiB pieces (three of them).
  piece_list built_pieces() const {
    piece_list list{content_.size(), default_piece_size, {}};
    for (std::uint64_t at = 0; at < content_.size(); at += default_piece_size) {
      list.pieces.push_back(sha256_of(std::as_bytes(std::span(content_)).subspan(
          at, std::min<std::uint64_t>(default_piece_size, content_.size() - at))));
    }
    return list;
  }

  fetch_options with_pieces(fetch_options o) const {
    o.digest->pieces = sha256_of(std::as_bytes(std::span(pieces_)));
    return o;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  fetch_options options(std::vector<std::string> targets) {
    fetch_options o;
    o.wanted = {item_kind::file, "item", "1", std::nullopt};
    o.output = dir_ / "item.bin";
    o.digest = trusted_digest{content_.size(), sha256_of(std::as_bytes(std::span(content_)))};
    o.discovery.port = port_;
    o.discovery.window = 300ms;
    for (const auto& t : targets) {
      o.discovery.targets.push_back(net::ip::make_address(t));
    }
    o.state_dir = dir_ / "state";
    o.busy_patience = std::chrono::milliseconds(0);
    return o;
  }

  static boost::system::result<fetch_outcome, fetch_failure> run(const fetch_options& o) {
    net::io_context ioc;
    std::optional<boost::system::result<fetch_outcome, fetch_failure>> out;
    net::co_spawn(ioc, fetch(o), [&](std::exception_ptr e, auto r) {
      ASSERT_FALSE(e);
      out.emplace(std::move(r));
    });
    ioc.run();
    return std::move(*out);
  }

  std::string output() const {
    std::ifstream in(dir_ / "item.bin", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::filesystem::path dir_;
  std::string content_;
  std::string pieces_;  // encoded piece list of content_
  std::uint16_t port_ = 0;
};

TEST_F(fetch_test, without_a_piece_list_the_next_holder_starts_from_zero) {
  // Holders with free slots are tried first: the one that drops goes first. Its half cannot be
  // checked, so the next holder sends every byte (and alone answers for them).
  scripted_holder dropper(2, port_, behaviour::drop_halfway, content_, 5);
  scripted_holder honest(3, port_, behaviour::honest, content_, 0);
  const auto result = run(options({"127.0.0.2", "127.0.0.3"}));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->source, fetch_source::peer);
  ASSERT_EQ(result->attempts.size(), 2u);
  EXPECT_NE(result->attempts[0].outcome.find("after"), std::string::npos) << result->attempts[0].outcome;
  EXPECT_EQ(result->attempts[1].outcome, "ok");
  EXPECT_EQ(honest.range_header(), "");
  EXPECT_EQ(output(), content_);
  EXPECT_TRUE(result->verified);
}

TEST_F(fetch_test, with_a_piece_list_the_next_holder_resumes_after_the_last_verified_piece) {
  scripted_holder dropper(2, port_, behaviour::drop_halfway, content_, 5, pieces_);
  scripted_holder honest(3, port_, behaviour::honest, content_, 0, pieces_);
  const auto result = run(with_pieces(options({"127.0.0.2", "127.0.0.3"})));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->attempts.back().outcome, "ok");
  // 1.5 MiB arrived from the dropper: piece 0 verified, piece 1 half there and thrown away.
  EXPECT_EQ(honest.range_header(), "Range: bytes=1048576-");
  EXPECT_EQ(output(), content_);
}

TEST_F(fetch_test, a_bad_piece_is_discarded_at_once_and_blames_only_its_holder) {
  scripted_holder liar(2, port_, behaviour::corrupt, content_, 5, pieces_);
  scripted_holder honest(3, port_, behaviour::honest, content_, 0, pieces_);
  const auto result = run(with_pieces(options({"127.0.0.2", "127.0.0.3"})));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(output(), content_);
  std::string liar_outcome;
  std::string honest_outcome;
  for (const auto& a : result->attempts) {
    if (a.url.find("127.0.0.2") != std::string::npos && a.url.find("/cache/") != std::string::npos) {
      liar_outcome = a.outcome;
    }
    if (a.url.find("127.0.0.3") != std::string::npos && a.url.find("/cache/") != std::string::npos) {
      honest_outcome = a.outcome;
    }
  }
  EXPECT_NE(liar_outcome.find("bad piece 1"), std::string::npos) << liar_outcome;
  EXPECT_EQ(honest_outcome, "ok");
  EXPECT_EQ(honest.range_header(), "Range: bytes=1048576-");  // piece 0 from the liar was fine
  EXPECT_EQ(liar.item_requests(), 1);
}

TEST_F(fetch_test, a_holder_without_the_piece_list_is_used_whole) {
  scripted_holder honest(3, port_, behaviour::honest, content_, 1);  // answers 404 for the list
  const auto result = run(with_pieces(options({"127.0.0.3"})));
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(result->attempts.size(), 2u);
  EXPECT_NE(result->attempts[0].outcome.find("HTTP 404: no piece list"), std::string::npos)
      << result->attempts[0].outcome;
  EXPECT_EQ(result->attempts[1].outcome, "ok");
  EXPECT_EQ(output(), content_);
}

TEST_F(fetch_test, a_piece_list_other_than_the_signed_one_skips_its_holder) {
  std::string forged = pieces_;
  forged.back() ^= 1;
  scripted_holder forger(2, port_, behaviour::honest, content_, 5, forged);
  scripted_holder honest(3, port_, behaviour::honest, content_, 0, pieces_);
  const auto result = run(with_pieces(options({"127.0.0.2", "127.0.0.3"})));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(forger.item_requests(), 0);
  EXPECT_EQ(result->attempts.front().outcome,
            "piece list does not match the signed digest: offer skipped");
  EXPECT_EQ(output(), content_);
}

TEST_F(fetch_test, a_trickle_is_cut_by_the_rate_floor) {
  scripted_holder trickler(2, port_, behaviour::trickle, content_, 5);
  scripted_holder honest(3, port_, behaviour::honest, content_, 0);
  auto o = options({"127.0.0.2", "127.0.0.3"});
  o.limits.min_rate = 64 << 10;
  o.limits.rate_window = 500ms;
  const auto result = run(o);
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(result->attempts.size(), 2u);
  EXPECT_NE(result->attempts[0].outcome.find("too slow"), std::string::npos)
      << result->attempts[0].outcome;
  EXPECT_EQ(result->attempts[1].outcome, "ok");
  EXPECT_EQ(output(), content_);
}

TEST_F(fetch_test, an_attempt_ends_at_its_deadline_however_it_goes) {
  scripted_holder trickler(2, port_, behaviour::trickle, content_, 5);
  auto o = options({"127.0.0.2"});
  // The floor is never measured (its window is longer than the attempt): only the deadline,
  // 500 ms plus 3 MiB at 3 MiB/s, ends the attempt.
  o.limits.min_rate = 3 << 20;
  o.limits.rate_window = 60s;
  o.limits.attempt_base = 500ms;
  const auto result = run(o);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("attempt deadline of 1.5 s passed"), std::string::npos)
      << result.error().message;
}

TEST_F(fetch_test, the_whole_fetch_ends_at_its_deadline_and_leaves_nothing) {
  scripted_holder trickler(2, port_, behaviour::trickle, content_, 5);
  auto o = options({"127.0.0.2"});
  o.limits.min_rate = 0;  // no per-attempt bound: only the overall deadline ends it
  o.deadline = 1500ms;
  const auto result = run(o);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, boost::system::errc::timed_out);
  EXPECT_NE(result.error().message.find("within the deadline of 1.5 s"), std::string::npos)
      << result.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "item.bin"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "item.bin.lanrelay-part"));
}

TEST_F(fetch_test, a_symbolic_link_planted_at_the_partial_file_is_refused) {
  const auto victim = dir_ / "victim";
  std::ofstream(victim) << "precious";
  std::filesystem::create_symlink(victim, dir_ / "item.bin.lanrelay-part");
  scripted_holder honest(3, port_, behaviour::honest, content_, 1);
  const auto result = run(options({"127.0.0.3"}));
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("is a symbolic link"), std::string::npos)
      << result.error().message;
  std::ifstream in(victim);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "precious");
  EXPECT_EQ(honest.requests(), 0);
  EXPECT_TRUE(std::filesystem::is_symlink(dir_ / "item.bin.lanrelay-part"));
}

TEST_F(fetch_test, a_partial_file_left_by_an_interrupted_run_is_replaced) {
  std::ofstream(dir_ / "item.bin.lanrelay-part") << "leftover";
  scripted_holder honest(3, port_, behaviour::honest, content_, 1);
  const auto result = run(options({"127.0.0.3"}));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(output(), content_);
}

TEST_F(fetch_test, a_busy_holder_moves_the_agent_to_the_next) {
  scripted_holder busy(2, port_, behaviour::busy, content_, 5);
  scripted_holder honest(3, port_, behaviour::honest, content_, 0);
  const auto result = run(options({"127.0.0.2", "127.0.0.3"}));
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(result->attempts.size(), 2u);
  EXPECT_EQ(result->attempts[0].outcome, "busy (503)");
  EXPECT_EQ(result->attempts[1].outcome, "ok");
  EXPECT_EQ(output(), content_);
}

TEST_F(fetch_test, nobody_answering_and_no_upstream_is_a_clear_error_that_keeps_nothing) {
  const auto result = run(options({"127.0.0.4"}));
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("no offers"), std::string::npos) << result.error().message;
  EXPECT_NE(result.error().message.find("no upstream URL was given"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "item.bin"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "item.bin.lanrelay-part"));
}

}  // namespace
}  // namespace lanrelay::agent
