// A hostile segment: a scripted attacker on the bridge answers every query at once, before the
// relay, with offers pointing at its own HTTP server, which then lies, stalls, trickles, never
// answers or is always busy. For each case the real `lanrelay fetch` must end with the right
// bytes from the relay, never blame the relay, never leave wrong bytes at -o, and finish within
// one attempt's deadline plus a normal transfer (a hang guard, far above what a busy machine
// needs). Slots held without reading are the relay's side (tests of the slot share).

#include "segment_fixture.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/segment/discovery_codec.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

enum class attack {
  wrong_bytes,   // 200, the right length, other bytes
  stall,         // 200, 100 KiB of other bytes, then silence with the connection open
  endless_body,  // 200 without a length, other bytes as fast as the network takes them
  trickle,       // 200, one byte per second
  no_head,       // accepts, reads the request, says nothing
  many_urls,     // eight offers with eight URLs, each serving other bytes
  third_host,    // offers whose URLs name another host (the upstream web server)
  busy,          // 503 always
  named_host,    // a URL on another host that the relay's catalog does not name, then one it names
};

std::string_view name_of(attack a) {
  switch (a) {
    case attack::wrong_bytes: return "wrong_bytes";
    case attack::stall: return "stall";
    case attack::endless_body: return "endless_body";
    case attack::trickle: return "trickle";
    case attack::no_head: return "no_head";
    case attack::many_urls: return "many_urls";
    case attack::third_host: return "third_host";
    case attack::busy: return "busy";
    case attack::named_host: return "named_host";
  }
  return "?";
}

// How the agent knows the bytes: the relay's signed catalog (with the item's piece list digest)
// or the caller's --sha256/--size (whole-file rule).
enum class trust { site_key, digest };

constexpr std::uint16_t attacker_http_port = 8080;
constexpr std::size_t many_urls = 8;

// The attacker: a discovery responder and an HTTP server on one host of the segment, run as
// threads of this process on sockets opened in the host's namespace.
class attacker {
 public:
  attacker(const segment::host& host, attack how, std::uint64_t size, sha256_digest sha256,
           std::string pieces, std::string third_host)
      : host_(host),
        how_(how),
        size_(size),
        sha256_(sha256),
        pieces_(std::move(pieces)),
        third_host_(std::move(third_host)) {
    udp_ = socket_in_netns(host.netns, AF_INET, SOCK_DGRAM);
    const int on = 1;
    ::setsockopt(udp_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    ::setsockopt(udp_, SOL_SOCKET, SO_BROADCAST, &on, sizeof on);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_port = htons(discovery::default_port);
    EXPECT_EQ(::bind(udp_, reinterpret_cast<sockaddr*>(&any), sizeof any), 0) << std::strerror(errno);

    tcp_ = socket_in_netns(host.netns, AF_INET, SOCK_STREAM);
    ::setsockopt(tcp_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in web{};
    web.sin_family = AF_INET;
    web.sin_port = htons(attacker_http_port);
    ::inet_pton(AF_INET, host.address.c_str(), &web.sin_addr);
    EXPECT_EQ(::bind(tcp_, reinterpret_cast<sockaddr*>(&web), sizeof web), 0) << std::strerror(errno);
    ::listen(tcp_, 64);
    threads_.emplace_back([this] { answer_queries(); });
    threads_.emplace_back([this] { accept_connections(); });
  }

  ~attacker() {
    stop_ = true;
    for (auto& t : threads_) {
      t.join();
    }
    std::lock_guard lock(mutex_);
    for (auto& t : connections_) {
      t.join();
    }
    ::close(udp_);
    ::close(tcp_);
  }

  int offers_sent() const { return offers_sent_; }
  int connections() const { return connections_seen_; }

 private:
  void answer_queries() {
    std::array<std::byte, 1500> buffer{};
    while (!stop_) {
      pollfd p{udp_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) {
        continue;
      }
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const auto n = ::recvfrom(udp_, buffer.data(), buffer.size(), 0,
                                reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) {
        continue;
      }
      auto q = discovery::decode_query(std::span(buffer.data(), static_cast<std::size_t>(n)));
      if (!q) {
        continue;
      }
      const std::size_t count =
          how_ == attack::many_urls ? many_urls : (how_ == attack::named_host ? 2 : 1);
      for (std::size_t i = 0; i < count; ++i) {
        discovery::offer o;
        o.transaction_id = q->transaction_id;
        o.sender_cookie = 0xbad0000 + i;  // a new identity per URL, too
        o.role = discovery::responder_role::relay;  // the role is a claim like any other
        o.kind = q->kind;
        o.name = q->name;
        o.version = q->version;
        o.size = size_;
        o.sha256 = sha256_;
        const bool elsewhere = how_ == attack::third_host || how_ == attack::named_host;
        const std::string url_host = elsewhere ? third_host_ : host_.address;
        o.url = "http://" + url_host + ":" + std::to_string(elsewhere ? 80 : attacker_http_port) +
                "/cache/file/payload/1";
        if (how_ == attack::named_host) {
          o.url += i == 0 ? "?not-named" : "";  // the second is the URL the catalog names
        } else if (i > 0) {
          o.url += "?copy=" + std::to_string(i);
        }
        o.free_slots = 255;  // always first in line
        const auto datagram = discovery::encode(o, static_cast<std::size_t>(n));
        if (datagram) {
          ::sendto(udp_, datagram->data(), datagram->size(), 0, reinterpret_cast<sockaddr*>(&from),
                   len);
          ++offers_sent_;
        }
      }
    }
  }

  void accept_connections() {
    while (!stop_) {
      pollfd p{tcp_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) {
        continue;
      }
      const int fd = ::accept(tcp_, nullptr, nullptr);
      if (fd < 0) {
        continue;
      }
      ++connections_seen_;
      std::lock_guard lock(mutex_);
      connections_.emplace_back([this, fd] {
        serve(fd);
        ::close(fd);
      });
    }
  }

  // Sends all of `data` unless the client went away or the test is over.
  bool send_all(int fd, std::string_view data) {
    while (!data.empty() && !stop_) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 50) != 1) {
        continue;
      }
      const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        continue;
      }
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return data.empty();
  }

  // Holds the connection until the client closes it or the test ends.
  void hold(int fd) {
    char buffer[4096];
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) == 1 && ::recv(fd, buffer, sizeof buffer, 0) <= 0) {
        return;
      }
    }
  }

  void serve(int fd) {
    std::string head;
    char buffer[4096];
    while (head.find("\r\n\r\n") == std::string::npos && !stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) {
        continue;
      }
      const auto n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) {
        return;
      }
      head.append(buffer, static_cast<std::size_t>(n));
    }
    if (how_ == attack::no_head) {
      hold(fd);
      return;
    }
    if (how_ == attack::busy) {
      send_all(fd, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n");
      return;
    }
    if (head.starts_with("GET /-/pieces/")) {
      // The genuine list (the relay serves it to anyone): the lie is in the pieces.
      send_all(fd, pieces_.empty()
                       ? std::string("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n")
                       : "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(pieces_.size()) +
                             "\r\nConnection: close\r\n\r\n" + pieces_);
      return;
    }
    std::string junk(64 << 10, '\0');
    std::mt19937_64 random(fd);
    for (auto& c : junk) {
      c = static_cast<char>(random());
    }
    const std::string with_length = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(size_) +
                                    "\r\nConnection: close\r\n\r\n";
    switch (how_) {
      case attack::wrong_bytes:
      case attack::many_urls:
        if (send_all(fd, with_length)) {
          for (std::uint64_t sent = 0; sent < size_;) {
            const auto n = std::min<std::uint64_t>(junk.size(), size_ - sent);
            if (!send_all(fd, std::string_view(junk).substr(0, n))) {
              break;
            }
            sent += n;
          }
        }
        break;
      case attack::stall:
        if (send_all(fd, with_length) && send_all(fd, junk) && send_all(fd, junk)) {
          hold(fd);
        }
        break;
      case attack::endless_body:
        if (send_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")) {
          while (send_all(fd, junk)) {
          }
        }
        break;
      case attack::trickle:
        if (send_all(fd, with_length)) {
          for (std::size_t i = 0; !stop_ && send_all(fd, junk.substr(i % junk.size(), 1)); ++i) {
            for (int wait = 0; wait < 20 && !stop_; ++wait) {
              ::poll(nullptr, 0, 50);  // one byte per second
            }
          }
        }
        break;
      default:
        break;
    }
  }

  const segment::host& host_;
  const attack how_;
  const std::uint64_t size_;
  const sha256_digest sha256_;
  const std::string pieces_;
  const std::string third_host_;
  int udp_ = -1;
  int tcp_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> offers_sent_{0};
  std::atomic<int> connections_seen_{0};
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::vector<std::thread> connections_;  // guarded by mutex_
};

class attacker_segment : public segment_test,
                         public testing::WithParamInterface<std::tuple<attack, trust>> {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-attacker")) {
      return;
    }
    // Two pieces and a bit: a lie in any piece is caught before the end.
    write_payload((2 << 20) + 4321, 11);
    lan_ = &add_segment();
  }

  void TearDown() override {
    attacker_.reset();
    segment_test::TearDown();
  }

  // The relay, holding the payload, with a site key; returns the public key text.
  std::string start_relay(const std::string& extra_config = "") {
    const auto& host = lan_->add_host("relay");
    const std::string key = make_site_key("relay");
    hold_payload(state_dir("relay"));
    start_relay_daemon(host, "relay",
                       "[relay]\nrole = \"relay\"\n[log]\nlevel = \"info\"\n" + extra_config);
    pieces_ = http_get_in_netns(host.netns, host.address, 4127, "/-/pieces/" + payload_sha_);
    EXPECT_FALSE(pieces_.empty());
    return key;
  }

  // `lanrelay fetch` on each agent at once; attempts bounded small, as an administrator could.
  std::vector<fetch_run> fetch_all(const std::vector<const segment::host*>& agents, trust mode,
                                   const std::string& site_key) {
    std::vector<std::string> args{"--upstream", upstream_url(), "--min-rate", "256KiB",
                                  "--rate-window", "1s", "--attempt-base", "3s", "--deadline",
                                  "120s"};
    const auto trusted_by = mode == trust::site_key
                                ? std::vector<std::string>{"--site-key", site_key}
                                : digest_args();
    args.insert(args.end(), trusted_by.begin(), trusted_by.end());
    return fetch_payload(agents, args, 150s);
  }

  // The attacker on a new host, its offers naming `third_host` when its attack sends agents
  // elsewhere.
  const segment::host& start_attacker(attack how, const std::string& third_host) {
    const auto& rogue = lan_->add_host("attacker");
    attacker_.emplace(rogue, how, payload_size_, parse_sha256_hex(payload_sha_).value(), pieces_,
                      third_host);
    return rogue;
  }

  segment* lan_ = nullptr;
  std::optional<attacker> attacker_;
  std::string pieces_;
};

TEST_P(attacker_segment, the_agent_gets_the_right_bytes_from_the_relay_and_blames_only_the_attacker) {
  const auto [how, mode] = GetParam();
  ASSERT_NO_FATAL_FAILURE(start_upstream_server(lan_->add_host("upstream")));
  const std::string site_key = start_relay();
  const auto& rogue = start_attacker(how, upstream_address_);
  const auto agents = add_agents(*lan_, 3);

  // One attempt's deadline (3 s + 2 MiB at 256 KiB/s = 11 s, for the piece list and for the
  // item) plus a normal transfer and discovery, with room for a loaded machine: a hang guard,
  // not a speed test.
  constexpr auto bound = 120s;
  const std::string rogue_url = "//" + rogue.address + ":";
  // The agents shuffle the offers: rounds of three until one of them tried the attacker first
  // (each does with probability 1/3 or more: the relay answers over IPv4 and IPv6; ten rounds all
  // missing it: 5e-6). A third host is never tried at all.
  bool met_attacker = false;
  std::string last_log;
  for (int round = 0; round < 10 && !met_attacker; ++round) {
    const auto results = fetch_all(agents, mode, site_key);
    for (const auto& r : results) {
      ASSERT_EQ(r.exit_status, 0) << r.log;
      EXPECT_TRUE(r.bytes_ok) << "wrong bytes left at -o\n" << r.log;
      last_log = r.log;
      EXPECT_EQ(json_text(r.report, "source"), "relay") << r.log;
      EXPECT_LT(r.took, bound) << r.log;
      ASSERT_TRUE(r.report.contains("attempts") && r.report.at("attempts").is_array()) << r.log;
      const auto& attempts = r.report.at("attempts").as_array();
      std::size_t rogue_item_attempts = 0;
      for (std::size_t i = 0; i < attempts.size(); ++i) {
        const std::string url(attempts[i].as_object().at("url").as_string());
        const std::string outcome(attempts[i].as_object().at("outcome").as_string());
        const bool at_rogue = url.find(rogue_url) != std::string::npos;
        const bool at_upstream = url.find("//" + upstream_address_ + "/") != std::string::npos;
        if (!at_rogue && !at_upstream) {
          // The relay, by its IPv4 or its link-local IPv6 address.
          EXPECT_TRUE(outcome == "ok" || outcome.starts_with("ok:")) << "the relay was blamed\n" << r.log;
        }
        if (at_rogue) {
          met_attacker = met_attacker || i == 0;
          rogue_item_attempts += url.find("/cache/") != std::string::npos ? 1 : 0;
        }
        EXPECT_EQ(url.find("//" + upstream_address_ + ":80/cache/"), std::string::npos)
            << "a third host was asked\n" << r.log;
      }
      // One host is one holder, however many URLs it offers.
      EXPECT_LE(rogue_item_attempts, 1u) << r.log;
    }
    if (how == attack::third_host) {
      break;
    }
  }
  if (how == attack::third_host) {
    EXPECT_EQ(upstream_requests("/cache/"), 0u);
  } else {
    EXPECT_TRUE(met_attacker) << "no agent tried the attacker first in ten rounds; the last:\n"
                              << last_log;
  }
  EXPECT_GT(attacker_->offers_sent(), 0) << last_log;
  EXPECT_EQ(upstream_requests("/payload.bin"), 0u);  // the relay served every agent
}

INSTANTIATE_TEST_SUITE_P(
    every_lie, attacker_segment,
    testing::Combine(testing::Values(attack::wrong_bytes, attack::stall, attack::endless_body,
                                     attack::trickle, attack::no_head, attack::many_urls,
                                     attack::third_host, attack::busy),
                     testing::Values(trust::site_key, trust::digest)),
    [](const testing::TestParamInfo<std::tuple<attack, trust>>& case_info) {
      return std::string(name_of(std::get<0>(case_info.param))) +
             (std::get<1>(case_info.param) == trust::site_key ? "_with_pieces" : "_whole_file");
    });

// The one exception to "an offer's URL names its sender": the relay's catalog names the URL. The
// relay lists another host (`front`, a web server holding the payload at the relay's paths) in
// trust.item_origins; the attacker offers first a URL on the front that the catalog does not name
// (refused: the front never gets it), then the URL it names (used: fetched from the front).
class attacker_segment_named : public attacker_segment {};

TEST_P(attacker_segment_named, a_url_the_relays_catalog_names_is_used_on_another_host) {
  ASSERT_NO_FATAL_FAILURE(start_upstream_server(lan_->add_host("upstream")));
  const auto& front = lan_->add_host("front");
  fs::create_directories(work_ / "front" / "cache" / "file" / "payload");
  fs::copy_file(payload_, work_ / "front" / "cache" / "file" / "payload" / "1");
  std::string failure;
  ASSERT_TRUE(start_web_server(processes_, front, work_ / "front-nginx", work_ / "front",
                               "/cache/file/payload/1", &failure))
      << failure;
  const std::string named_url = "http://" + front.address + ":80/cache/file/payload/1";
  const std::string site_key =
      start_relay("[trust]\nitem_origins = [\"http://" + front.address + ":80\"]\n");
  start_attacker(attack::named_host, front.address);
  const auto agents = add_agents(*lan_, 3);

  // The agents shuffle the relay's two offers (IPv4 and IPv6) and the named one: rounds of three
  // until one fetched the named URL (ten rounds all missing it: 5e-6).
  bool fetched_from_front = false;
  std::string last_log;
  for (int round = 0; round < 10 && !fetched_from_front; ++round) {
    for (const auto& r : fetch_all(agents, trust::site_key, site_key)) {
      ASSERT_EQ(r.exit_status, 0) << r.log;
      EXPECT_TRUE(r.bytes_ok) << r.log;
      last_log = r.log;
      ASSERT_TRUE(r.report.contains("attempts") && r.report.at("attempts").is_array()) << r.log;
      for (const auto& attempt : r.report.at("attempts").as_array()) {
        const std::string url(attempt.as_object().at("url").as_string());
        const std::string outcome(attempt.as_object().at("outcome").as_string());
        EXPECT_EQ(url.find("not-named"), std::string::npos) << "an unnamed URL was used\n" << r.log;
        if (url == named_url) {
          EXPECT_TRUE(outcome == "ok" || outcome.starts_with("ok:")) << r.log;
          fetched_from_front = true;
        }
      }
    }
  }
  EXPECT_TRUE(fetched_from_front) << "no agent used the URL the catalog names; the last:\n"
                                  << last_log;
  EXPECT_GT(web_server_requests(work_ / "front-nginx", "GET /cache/file/payload/1 "), 0u);
  EXPECT_EQ(web_server_requests(work_ / "front-nginx", "not-named"), 0u);
  EXPECT_EQ(upstream_requests("/payload.bin"), 0u);  // zero upstream
}

INSTANTIATE_TEST_SUITE_P(catalog, attacker_segment_named,
                         testing::Values(std::tuple(attack::named_host, trust::site_key)),
                         [](const testing::TestParamInfo<std::tuple<attack, trust>>&) {
                           return std::string("with_pieces");
                         });

}  // namespace
}  // namespace lanrelay::test
