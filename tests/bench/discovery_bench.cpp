// Discovery responder throughput on loopback, beside a minimal recvmmsg/sendmmsg UDP echo that
// bounds what any UDP responder can do on this machine, and under a flood of invented sources.
//
// Usage: bench_discovery [SECONDS [FLOOD_PER_SECOND]]   (default 5 per run, 50,000 per second)
// Prints queries answered per second by lanrelay's discovery_responder (the daemon's code, with a
// real store holding one item) and datagrams echoed per second by the echo, and their ratio.
// Then the responder again, answering the same honest source while another thread floods it
// with queries from invented addresses (a fresh random 127.x.y.z source for every datagram, set
// with IP_PKTINFO: loopback owns all of 127.0.0.0/8, so every one is "on-link", like an invented
// fe80:: source on a LAN), and the ratio of honest answers per second with and without the flood.
// Everything is on loopback and stops by itself.

#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/discovery_responder.hpp"
#include "lanrelay/segment/discovery_codec.hpp"

#include <boost/asio/io_context.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace net = boost::asio;

constexpr int batch = 32;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

int bound_socket(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const auto addr = loopback(port);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("bind");
    std::exit(1);
  }
  const int size = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// The bound: receive a batch, send every datagram straight back.
void echo_server(int fd, const std::atomic<bool>& stop) {
  std::vector<std::array<char, 1500>> buffers(batch);
  std::vector<sockaddr_in> peers(batch);
  std::vector<iovec> iov(batch);
  std::vector<mmsghdr> msgs(batch);
  while (!stop) {
    for (int i = 0; i < batch; ++i) {
      iov[i] = {buffers[i].data(), buffers[i].size()};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &peers[i];
      msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) {
      continue;
    }
    const int n = ::recvmmsg(fd, msgs.data(), batch, MSG_DONTWAIT, nullptr);
    for (int i = 0; i < n; ++i) {
      iov[i].iov_len = msgs[i].msg_len;
    }
    if (n > 0) {
      ::sendmmsg(fd, msgs.data(), static_cast<unsigned>(n), 0);
    }
  }
}

// Sends queries to `port` from invented 127.x.y.z sources, in batches of 32 paced to
// `per_second`, until `stop`.
void flood(std::uint16_t port, const std::vector<std::byte>& query, const std::atomic<bool>& stop,
           std::atomic<std::uint64_t>& sent, double per_second) {
  const auto started = std::chrono::steady_clock::now();
  std::uint64_t batches = 0;
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const auto target = loopback(port);
  std::vector<iovec> iov(batch);
  std::vector<mmsghdr> out(batch);
  constexpr std::size_t control_size = CMSG_SPACE(sizeof(in_pktinfo));
  std::vector<std::array<char, control_size>> controls(batch);
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  while (!stop) {
    for (int i = 0; i < batch; ++i) {
      iov[i] = {const_cast<std::byte*>(query.data()), query.size()};
      out[i] = {};
      out[i].msg_hdr.msg_name = const_cast<sockaddr_in*>(&target);
      out[i].msg_hdr.msg_namelen = sizeof target;
      out[i].msg_hdr.msg_iov = &iov[i];
      out[i].msg_hdr.msg_iovlen = 1;
      out[i].msg_hdr.msg_control = controls[i].data();
      out[i].msg_hdr.msg_controllen = control_size;
      cmsghdr* c = CMSG_FIRSTHDR(&out[i].msg_hdr);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo info{};
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      // 127.x.y.z, never 127.0.0.1 (the honest source) nor .0 / .255 host parts.
      const std::uint32_t host = 0x7f000000U | static_cast<std::uint32_t>(state % 0x00fffffdU + 2U);
      info.ipi_spec_dst.s_addr = htonl(host);
      std::memcpy(CMSG_DATA(c), &info, sizeof info);
    }
    const int n = ::sendmmsg(fd, out.data(), batch, 0);
    if (n > 0) {
      sent += static_cast<std::uint64_t>(n);
    }
    ++batches;
    std::this_thread::sleep_until(
        started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(batches * batch / per_second)));
  }
  ::close(fd);
}

// Keeps up to `window` queries in flight against `port` for `duration`; returns replies per second.
double load(std::uint16_t port, const std::vector<std::byte>& query, std::chrono::seconds duration) {
  const int fd = bound_socket(0);
  const auto target = loopback(port);
  constexpr int window = 256;
  std::vector<iovec> iov(batch);
  std::vector<mmsghdr> out(batch);
  for (int i = 0; i < batch; ++i) {
    iov[i] = {const_cast<std::byte*>(query.data()), query.size()};
    out[i] = {};
    out[i].msg_hdr.msg_name = const_cast<sockaddr_in*>(&target);
    out[i].msg_hdr.msg_namelen = sizeof target;
    out[i].msg_hdr.msg_iov = &iov[i];
    out[i].msg_hdr.msg_iovlen = 1;
  }
  std::vector<std::array<char, 1500>> buffers(batch);
  std::vector<iovec> in_iov(batch);
  std::vector<mmsghdr> in(batch);
  for (int i = 0; i < batch; ++i) {
    in_iov[i] = {buffers[i].data(), buffers[i].size()};
    in[i] = {};
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }

  std::uint64_t replies = 0;
  std::int64_t in_flight = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + duration;
  auto last_reply = start;
  while (std::chrono::steady_clock::now() < end) {
    if (in_flight < window) {
      const int sent = ::sendmmsg(fd, out.data(), batch, MSG_DONTWAIT);
      in_flight += sent > 0 ? sent : 0;
    }
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 1);
    const int got = ::recvmmsg(fd, in.data(), batch, MSG_DONTWAIT, nullptr);
    if (got > 0) {
      replies += static_cast<std::uint64_t>(got);
      in_flight -= got;
      last_reply = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_reply > 20ms) {
      in_flight = 0;  // datagrams were dropped somewhere: refill the window
      last_reply = std::chrono::steady_clock::now();
    }
  }
  ::close(fd);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  return static_cast<double>(replies) / elapsed.count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::chrono::seconds duration(argc > 1 ? std::atoi(argv[1]) : 5);
  const double flood_rate = argc > 2 ? std::atof(argv[2]) : 50'000;

  char pattern[] = "/tmp/lanrelay-discovery-bench.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::filesystem::path dir = pattern;
  std::ofstream(dir / "pattern.zip") << std::string(100'000, 'p');
  auto store = lanrelay::content_store::open({.dir = dir / "cache"}).value();
  store->add_file(dir / "pattern.zip", {lanrelay::item_kind::pattern, "icrc", "1667900"}).value();

  lanrelay::relay_config config = lanrelay::default_relay_config().config;
  config.discovery.port = 0;
  config.discovery.ipv6 = false;
  config.discovery.rate_limit = 100'000'000;  // one source sends everything: no limit here
  net::io_context ioc(1);
  lanrelay::relay::responder_counters counters;
  lanrelay::relay::discovery_responder responder(
      ioc, config, *store, 4127, 1, [] { return std::uint16_t{10}; }, counters);
  if (!responder.start()) {
    std::fprintf(stderr, "responder did not start\n");
    return 1;
  }
  std::thread responder_thread([&] { ioc.run(); });

  lanrelay::discovery::query q;
  q.transaction_id = 42;
  q.sender_cookie = 2;
  q.kind = lanrelay::item_kind::pattern;
  q.name = "icrc";
  q.version = "1667900";
  const auto query = lanrelay::discovery::encode(q).value();

  const double answered = load(responder.port(), query, duration);

  // The same honest load while invented sources flood the responder.
  const auto before_flood = responder.counters().new_source_limited.load();
  std::atomic<bool> stop_flood{false};
  std::atomic<std::uint64_t> flood_sent{0};
  std::thread flood_thread([&] { flood(responder.port(), query, stop_flood, flood_sent, flood_rate); });
  std::this_thread::sleep_for(500ms);  // the flood has taken hold
  const auto flood_sent_before = flood_sent.load();
  const auto flood_start = std::chrono::steady_clock::now();
  const double answered_in_flood = load(responder.port(), query, duration);
  const std::chrono::duration<double> flood_elapsed = std::chrono::steady_clock::now() - flood_start;
  const auto flood_sent_during = flood_sent.load() - flood_sent_before;
  stop_flood = true;
  flood_thread.join();
  const auto flood_dropped = responder.counters().new_source_limited.load() - before_flood;
  responder.stop();
  ioc.stop();
  responder_thread.join();

  std::atomic<bool> stop{false};
  const int echo_fd = bound_socket(0);
  std::thread echo_thread([&] { echo_server(echo_fd, stop); });
  const double echoed = load(port_of(echo_fd), query, duration);
  stop = true;
  echo_thread.join();
  ::close(echo_fd);
  std::filesystem::remove_all(dir);

  std::printf("%-34s %12s\n", "run (loopback, 1024-byte queries)", "per second");
  std::printf("%-34s %12.0f\n", "lanrelay discovery_responder", answered);
  std::printf("%-34s %12.0f\n", "recvmmsg/sendmmsg echo", echoed);
  std::printf("%-34s %12.2f  (goal >= 0.50)\n", "ratio responder/echo", answered / echoed);
  std::printf("%-34s %12.0f\n", "responder during a spoofed flood", answered_in_flood);
  std::printf("%-34s %12.0f\n", "flood datagrams sent", flood_sent_during / flood_elapsed.count());
  std::printf("%-34s %12.2f  (goal >= 0.80)\n", "ratio during flood/without", answered_in_flood / answered);
  std::printf("queries answered by the responder: %llu offers sent, %llu rate limited, "
              "%llu new sources over discovery.new_source_rate (%llu of them in the flood run)\n",
              static_cast<unsigned long long>(responder.counters().offers_sent.load()),
              static_cast<unsigned long long>(responder.counters().rate_limited.load()),
              static_cast<unsigned long long>(responder.counters().new_source_limited.load()),
              static_cast<unsigned long long>(flood_dropped));
  return 0;
}
