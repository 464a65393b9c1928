// A flood of discovery queries from invented source addresses (issue 10, "spoofed link-local
// sources stop discovery"), played on a segment of network namespaces: a flooder host writes
// whole Ethernet frames on its eth0 (an AF_PACKET socket, so it can put any source address in
// them) for a bounded time, while a real agent asks with `lanrelay discover` and a monitor reads
// /-/healthz. The relay must keep answering both.
//
// The flood (IPv6 only in the first test, both families in spoofed_ipv4_sources_too) has two
// parts, each a query for the item the relay holds:
// - IPv6: a fresh random link-local source (fe80::/64) for every datagram, to ff12::4126. Any
//   fe80:: source counts as on-link, so nothing but the rate limiter stands in its way.
// - IPv4: sources spread over 10.<subnet>.200.1-254, a part of the segment's /16 where no host
//   lives, to the directed broadcast address. (A flooder that takes the address of a real host
//   silences that host's own queries: no rate limiter can tell the two apart, see
//   docs/security.md.) Each of those 254 addresses stays within discovery.rate_limit most of
//   the time, and none of them resolves (ARP): the relay must not let its answers to them,
//   which wait in the kernel, crowd the real agent's answer out (segment/reply_gate.hpp).
// Deadlines are hang guards only: nothing here depends on how fast this machine is.

#include "segment_fixture.hpp"

#include "lanrelay/segment/discovery_codec.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::uint8_t subnet = 77;
constexpr auto flood_duration = 15s;  // the flooder stops by itself after this
constexpr int flood_per_second = 30'000;  // frames per second, both families together

std::uint16_t checksum_fold(std::uint32_t sum) {
  while ((sum >> 16) != 0) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::uint32_t checksum_add(std::uint32_t sum, const unsigned char* data, std::size_t size) {
  for (std::size_t i = 0; i + 1 < size; i += 2) {
    sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  }
  if (size % 2 == 1) {
    sum += static_cast<std::uint32_t>(data[size - 1] << 8);
  }
  return sum;
}

void put16(unsigned char* at, std::uint16_t value) {
  at[0] = static_cast<unsigned char>(value >> 8);
  at[1] = static_cast<unsigned char>(value);
}

// Writes frames with invented sources on the flooder's eth0 until `duration` has passed or
// `stop` is set. Counts what it sent.
class flooder {
 public:
  enum class families { ipv6, both };
  flooder(const std::string& netns, std::vector<std::byte> query, families which)
      : query_(std::move(query)),
        which_(which),
        fd_(socket_in_netns(netns, AF_PACKET, SOCK_RAW)) {
    if (fd_ < 0) {
      throw std::runtime_error("no packet socket in " + netns);
    }
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "eth0", IFNAMSIZ - 1);
    if (::ioctl(fd_, SIOCGIFINDEX, &ifr) != 0) {
      throw std::runtime_error("no eth0 in " + netns);
    }
    ifindex_ = ifr.ifr_ifindex;
    if (::ioctl(fd_, SIOCGIFHWADDR, &ifr) != 0) {
      throw std::runtime_error("no MAC address on eth0 in " + netns);
    }
    std::memcpy(mac_.data(), ifr.ifr_hwaddr.sa_data, 6);
  }
  ~flooder() {
    stop();
    ::close(fd_);
  }

  void start(std::chrono::milliseconds duration) {
    thread_ = std::thread([this, duration] { run(duration); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  std::uint64_t sent_v4() const { return sent_v4_; }
  std::uint64_t sent_v6() const { return sent_v6_; }
  std::uint64_t send_errors() const { return send_errors_; }

 private:
  void run(std::chrono::milliseconds duration) {
    std::mt19937_64 random(42);
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + duration;
    std::uint64_t frames = 0;
    while (!stop_ && std::chrono::steady_clock::now() < end) {
      // Paced in slices of 1 ms.
      const auto due = static_cast<std::uint64_t>(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() *
          flood_per_second);
      while (frames < due && !stop_) {
        const bool v6 = which_ == families::ipv6 || frames % 2 == 0;
        const auto frame = v6 ? ipv6_frame(random) : ipv4_frame(random);
        sockaddr_ll to{};
        to.sll_family = AF_PACKET;
        to.sll_ifindex = ifindex_;
        to.sll_halen = 6;
        to.sll_protocol = htons(v6 ? ETH_P_IPV6 : ETH_P_IP);
        std::memcpy(to.sll_addr, frame.data(), 6);
        if (::sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof to) < 0) {
          ++send_errors_;
        } else if (v6) {
          ++sent_v6_;
        } else {
          ++sent_v4_;
        }
        ++frames;
      }
      std::this_thread::sleep_for(1ms);
    }
  }

  std::vector<unsigned char> ethernet(const std::array<unsigned char, 6>& to, std::uint16_t type,
                                      std::size_t payload) const {
    std::vector<unsigned char> f(14 + payload);
    std::memcpy(f.data(), to.data(), 6);
    std::memcpy(f.data() + 6, mac_.data(), 6);
    put16(f.data() + 12, type);
    return f;
  }

  // The UDP header (a random source port, to the discovery port, checksum left 0) and the query.
  void put_udp(unsigned char* udp, std::mt19937_64& random) const {
    put16(udp, static_cast<std::uint16_t>(1024 + random() % 60000));
    put16(udp + 2, discovery::default_port);
    put16(udp + 4, static_cast<std::uint16_t>(8 + query_.size()));
    std::memcpy(udp + 8, query_.data(), query_.size());
  }

  std::vector<unsigned char> ipv4_frame(std::mt19937_64& random) const {
    const std::size_t udp_size = 8 + query_.size();
    auto f = ethernet({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ETH_P_IP, 20 + udp_size);
    unsigned char* ip = f.data() + 14;
    ip[0] = 0x45;
    put16(ip + 2, static_cast<std::uint16_t>(20 + udp_size));
    put16(ip + 4, static_cast<std::uint16_t>(random()));
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    const unsigned char host = static_cast<unsigned char>(1 + random() % 254);
    const unsigned char source[4] = {10, subnet, 200, host};
    const unsigned char destination[4] = {10, subnet, 255, 255};
    std::memcpy(ip + 12, source, 4);
    std::memcpy(ip + 16, destination, 4);
    put16(ip + 10, checksum_fold(checksum_add(0, ip, 20)));
    put_udp(ip + 20, random);  // checksum 0: none, allowed for IPv4
    return f;
  }

  std::vector<unsigned char> ipv6_frame(std::mt19937_64& random) const {
    const std::size_t udp_size = 8 + query_.size();
    // ff12::4126 maps to 33:33:00:00:41:26.
    auto f = ethernet({0x33, 0x33, 0x00, 0x00, 0x41, 0x26}, ETH_P_IPV6, 40 + udp_size);
    unsigned char* ip = f.data() + 14;
    ip[0] = 0x60;
    put16(ip + 4, static_cast<std::uint16_t>(udp_size));
    ip[6] = IPPROTO_UDP;
    ip[7] = 1;
    ip[8] = 0xfe;
    ip[9] = 0x80;
    const std::uint64_t interface_id = random();
    for (int i = 0; i < 8; ++i) {
      ip[16 + i] = static_cast<unsigned char>(interface_id >> (8 * i));
    }
    ip[24] = 0xff;
    ip[25] = 0x12;
    ip[38] = 0x41;
    ip[39] = 0x26;
    unsigned char* udp = ip + 40;
    put_udp(udp, random);
    // Mandatory for UDP over IPv6: the pseudo header (addresses, length, next header) and UDP.
    std::uint32_t sum = checksum_add(0, ip + 8, 32);
    sum += static_cast<std::uint32_t>(udp_size);
    sum += IPPROTO_UDP;
    sum = checksum_add(sum, udp, udp_size);
    std::uint16_t check = checksum_fold(sum);
    put16(udp + 6, check == 0 ? 0xffff : check);
    return f;
  }

  std::vector<std::byte> query_;
  families which_;
  int fd_ = -1;
  int ifindex_ = 0;
  std::array<unsigned char, 6> mac_{};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sent_v4_{0};
  std::atomic<std::uint64_t> sent_v6_{0};
  std::atomic<std::uint64_t> send_errors_{0};
};

class flood_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-flood", {})) {
      return;
    }
    lan_ = &add_segment(subnet);
  }

  void TearDown() override {
    flood_.reset();
    segment_test::TearDown();
  }

  const segment::host& start_relay() {
    const auto& host = lan_->add_host("relay");
    payload_ = work_ / "payload.bin";
    std::ofstream(payload_) << std::string(64 * 1024, 'p');
    hold_payload(state_dir("relay"));
    start_relay_daemon(host, "relay", "[log]\nlevel = \"info\"\n");
    return host;
  }

  // `lanrelay discover` for the relay's item, run in `agent`'s namespace: the offers' URLs.
  std::vector<std::string> discover(const segment::host& agent, int run) {
    const fs::path out = work_ / ("discover-" + std::to_string(run) + ".out");
    process p({LANRELAY_CLI_PATH, "discover", "--kind", "file", "--name", "payload", "--version",
               "1", "--json", "--state-dir", (work_ / "agent-state").string()},
              process::options{.netns = agent.netns, .output = out});
    EXPECT_TRUE(p.wait_for(30s)) << "lanrelay discover hung";
    const std::string text = read_file(out);
    std::vector<std::string> urls;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      boost::system::error_code ec;
      auto parsed = json::parse(line, ec);
      if (ec || !parsed.is_array()) {
        continue;  // a log line
      }
      for (const auto& offer : parsed.as_array()) {
        urls.emplace_back(offer.at("url").as_string());
      }
      return urls;
    }
    ADD_FAILURE() << "discover printed no JSON list: " << text;
    return urls;
  }

  segment* lan_ = nullptr;
  std::unique_ptr<flooder> flood_;

  void run_flood(flooder::families which);
};

void flood_segment::run_flood(flooder::families which) {
  const auto& relay = start_relay();
  const auto& agent = lan_->add_host("agent");
  const auto& attacker = lan_->add_host("flooder");
  const std::string relay_url_prefix = "http://" + relay.address + ":4127/";

  // Before the flood: the agent is answered.
  // (The relay answers the IPv4 query and the link-local IPv6 one, each with its own address.)
  const auto names_relay = [&](const std::vector<std::string>& urls) {
    return std::any_of(urls.begin(), urls.end(),
                       [&](const std::string& url) { return url.starts_with(relay_url_prefix); });
  };
  const auto before = discover(agent, 0);
  ASSERT_FALSE(before.empty());
  EXPECT_TRUE(names_relay(before)) << before.front();

  const discovery::query q{.transaction_id = 1, .sender_cookie = 0xf100d,
                           .kind = item_kind::file, .name = "payload", .version = "1"};
  flood_ = std::make_unique<flooder>(attacker.netns, discovery::encode(q).value(), which);
  const auto flood_started = std::chrono::steady_clock::now();
  flood_->start(flood_duration);

  // Let the flood take hold, then ask as a real agent would, several times over.
  ASSERT_TRUE(eventually(60s, [&] { return flood_->sent_v6() > 10'000; }));
  int answered = 0;
  int asked = 0;
  while (std::chrono::steady_clock::now() - flood_started < flood_duration - 3s && asked < 5) {
    ++asked;
    answered += names_relay(discover(agent, asked)) ? 1 : 0;
    EXPECT_FALSE(http_get_in_netns(agent.netns, relay.address, 4127, "/-/healthz", 5s).empty())
        << "/-/healthz did not answer during the flood";
  }
  const bool flood_still_running = std::chrono::steady_clock::now() - flood_started < flood_duration;
  const auto stats = daemon_stats(relay);  // on the relay's own machine: loopback only
  flood_->stop();
  std::printf("flood: %llu IPv6 and %llu IPv4 frames sent (%llu send errors); relay stats: %s\n",
              static_cast<unsigned long long>(flood_->sent_v6()),
              static_cast<unsigned long long>(flood_->sent_v4()),
              static_cast<unsigned long long>(flood_->send_errors()),
              json::serialize(stats).c_str());

  ASSERT_GE(asked, 1);
  EXPECT_TRUE(flood_still_running) << "the agent's questions did not all fall inside the flood";
  EXPECT_EQ(answered, asked) << "the agent got no offer from the relay during the flood";
  ASSERT_TRUE(stats.contains("discovery")) << json::serialize(stats);
  const auto& d = stats.at("discovery").as_object();
  // The flood arrived and the limiter turned most of it away: invented IPv6 sources as newcomers
  // over discovery.new_source_rate. The 254 IPv4 ones are each held to its own
  // discovery.rate_limit (rate_limited, how many depends on how fast this machine lets the
  // flooder send), and of what the limiter lets through, the answers that would only have
  // waited for ARP are held back (at least 10,000 IPv4 frames were sent, each of the 254
  // addresses gets at most a few answers).
  EXPECT_GT(d.at("new_source_limited").to_number<std::uint64_t>(), 1000u);
  if (which == flooder::families::both) {
    EXPECT_GT(d.at("unresolved_neighbour").to_number<std::uint64_t>(), 1000u);
  }

  // After it: still answered, and the daemon is alive.
  EXPECT_TRUE(names_relay(discover(agent, 99)));
}

TEST_F(flood_segment, the_relay_answers_a_real_agent_and_healthz_during_a_spoofed_flood) {
  run_flood(flooder::families::ipv6);
}

// With 254 invented IPv4 sources each held to its own discovery.rate_limit, the relay would
// answer ~5,000 queries per second to addresses that never resolve (ARP). The kernel keeps such
// answers queued on the unresolved neighbours, charged to the responder socket's send buffer;
// without the reply gate every send on that socket failed (EAGAIN) for seconds, the real agent's
// offer included. The gate sends at most one answer per unresolved neighbour at a time.
TEST_F(flood_segment, spoofed_ipv4_sources_too) {
  run_flood(flooder::families::both);
}

}  // namespace
}  // namespace lanrelay::test
