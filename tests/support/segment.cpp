#include "segment.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace lanrelay::test {
namespace {

constexpr std::string_view netns_prefix = "lrt";

// Namespaces are named lrt<pid>-...; remove those whose test process is gone.
void remove_stale_namespaces() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/var/run/netns", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(netns_prefix)) {
      continue;
    }
    const auto dash = name.find('-');
    if (dash == std::string::npos) {
      continue;
    }
    const std::string pid_text = name.substr(netns_prefix.size(), dash - netns_prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const pid_t owner = static_cast<pid_t>(std::stol(pid_text));
    if (::kill(owner, 0) != 0 && errno == ESRCH) {
      std::system(("ip netns delete " + name + " 2>/dev/null").c_str());
    }
  }
}

std::string hex_number(std::size_t n) {
  char text[17];
  std::snprintf(text, sizeof text, "%zx", n);
  return text;
}

}  // namespace

void run_checked(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    throw std::runtime_error("cannot run: " + command);
  }
  std::array<char, 512> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
    output += buffer.data();
  }
  const int status = ::pclose(pipe);
  if (status != 0) {
    throw std::runtime_error("command failed (" + std::to_string(status) + "): " + command +
                             "\n" + output);
  }
}

bool segment::supported() {
  return ::geteuid() == 0 && std::system("command -v ip >/dev/null && command -v nft >/dev/null") == 0;
}

segment::segment(std::uint8_t subnet, addressing mode)
    : prefix_(std::string(netns_prefix) + std::to_string(::getpid()) + "-" +
              std::to_string(subnet)),
      subnet_(subnet),
      mode_(mode) {
  remove_stale_namespaces();
  const std::string sw = prefix_ + "sw";
  run_checked("ip netns add " + sw);
  run_checked("ip -n " + sw + " link set dev lo up");
  run_checked("ip -n " + sw + " link add name br0 type bridge");
  run_checked("ip -n " + sw + " link set dev br0 up");
}

segment::~segment() {
  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    if (!attached_.contains(i)) {
      std::system(("ip netns delete " + hosts_[i].netns + " 2>/dev/null").c_str());
    }
  }
  std::system(("ip netns delete " + prefix_ + "sw 2>/dev/null").c_str());
}

const segment::host& segment::add_host(std::string_view name) {
  const std::size_t index = hosts_.size();
  const std::string sw = prefix_ + "sw";
  const std::string ns = prefix_ + "h" + std::to_string(index);
  const std::string port = "p" + std::to_string(index);
  const std::string address = "10." + std::to_string(subnet_) + "." + std::to_string(index / 250) +
                              "." + std::to_string(index % 250 + 1);
  run_checked("ip netns add " + ns);
  hosts_.push_back(host{std::string(name), ns, address});
  run_checked("ip -n " + ns + " link set dev lo up");
  // Link-local IPv6 addresses usable at once: no duplicate address detection on a test bridge.
  run_checked("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.default.accept_dad=0");
  run_checked("ip -n " + sw + " link add name " + port + " type veth peer name eth0 netns " + ns);
  run_checked("ip -n " + sw + " link set dev " + port + " master br0");
  run_checked("ip -n " + sw + " link set dev " + port + " up");
  if (mode_ == addressing::ipv6_only) {
    auto& h = hosts_.back();
    h.address.clear();
    // No address from the kernel: fe80::<N + 1> and, with a prefix, <prefix><N + 1>.
    run_checked("ip -n " + ns + " link set dev eth0 addrgenmode none");
    run_checked("ip -n " + ns + " link set dev eth0 up");
    h.link_local = "fe80::" + hex_number(index + 1);
    add_ipv6_address(h, "eth0", h.link_local);
    if (!ipv6_prefix_.empty()) {
      h.ipv6 = ipv6_prefix_ + hex_number(index + 1);
      add_ipv6_address(h, "eth0", h.ipv6);
    }
    return h;
  }
  run_checked("ip -n " + ns + " addr add " + address + "/16 brd + dev eth0");
  run_checked("ip -n " + ns + " link set dev eth0 up");
  return hosts_.back();
}

void segment::add_ipv6_address(const host& h, const std::string& device,
                               const std::string& address) {
  run_checked("ip -n " + h.netns + " -6 addr add " + address + "/64 dev " + device + " nodad");
}

void segment::add_ipv6_prefix(std::string_view prefix) {
  ipv6_prefix_ = prefix;
  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    if (attached_.contains(i) || mode_ != addressing::ipv6_only) {
      continue;
    }
    hosts_[i].ipv6 = ipv6_prefix_ + hex_number(i + 1);
    add_ipv6_address(hosts_[i], "eth0", hosts_[i].ipv6);
  }
}

const segment::host& segment::attach(const host& existing) {
  const std::size_t index = hosts_.size();
  const std::string sw = prefix_ + "sw";
  const std::string port = "p" + std::to_string(index);
  const std::string device = "seg" + std::to_string(subnet_);
  const std::string address = "10." + std::to_string(subnet_) + "." + std::to_string(index / 250) +
                              "." + std::to_string(index % 250 + 1);
  run_checked("ip -n " + sw + " link add name " + port + " type veth peer name " + device +
              " netns " + existing.netns);
  // Owned by the other segment's namespace: recorded without one, so it is not deleted twice.
  hosts_.push_back(host{existing.name, "", address});
  run_checked("ip -n " + sw + " link set dev " + port + " master br0");
  run_checked("ip -n " + sw + " link set dev " + port + " up");
  run_checked("ip -n " + existing.netns + " addr add " + address + "/16 brd + dev " + device);
  run_checked("ip -n " + existing.netns + " link set dev " + device + " up");
  hosts_.back().netns = existing.netns;
  attached_.insert(index);
  return hosts_.back();
}

std::string segment::broadcast_address() const {
  return "10." + std::to_string(subnet_) + ".255.255";
}

void segment::block_broadcast(family which) {
  run_checked("ip netns exec " + prefix_ + "sw nft add table bridge lanrelay_test");
  run_checked("ip netns exec " + prefix_ + "sw nft add chain bridge lanrelay_test forward "
              "'{ type filter hook forward priority 0; policy accept; }'");
  run_checked("ip netns exec " + prefix_ + "sw nft add rule bridge lanrelay_test forward "
              "meta pkttype '{ broadcast, multicast }' " +
              std::string(which == family::ipv4   ? "ether type ip "
                          : which == family::ipv6 ? "ether type ip6 "
                                                  : "") +
              "meta l4proto udp drop");
}

void segment::shape_ports(std::string_view rate) {
  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    run_checked("tc -n " + prefix_ + "sw qdisc replace dev p" + std::to_string(i) +
                " root tbf rate " + std::string(rate) + " burst 512k latency 50ms");
  }
}

std::string http_get_in_netns(const std::string& netns, const std::string& address,
                              std::uint16_t port, const std::string& path,
                              std::chrono::milliseconds timeout) {
  const int fd = socket_in_netns(netns, AF_INET, SOCK_STREAM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto remaining_ms = [&] {
    return static_cast<int>(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count()));
  };
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  std::string response;
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, remaining_ms()) != 1) {
          response.clear();
          break;
        }
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
          break;
        }
        response.append(buffer, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  const auto body = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/1.1 200") && !response.starts_with("HTTP/1.0 200")) {
    return {};
  }
  return body == std::string::npos ? std::string() : response.substr(body + 4);
}

int socket_in_netns(const std::string& netns, int domain, int type) {
  int result = -1;
  int error = 0;
  // setns(CLONE_NEWNET) changes only the calling thread; the socket keeps its namespace.
  std::thread worker([&] {
    const std::string path = "/var/run/netns/" + netns;
    const int ns_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0 || ::setns(ns_fd, CLONE_NEWNET) != 0) {
      error = errno;
    } else {
      result = ::socket(domain, type | SOCK_CLOEXEC, 0);
      error = errno;
    }
    if (ns_fd >= 0) {
      ::close(ns_fd);
    }
  });
  worker.join();
  if (result < 0) {
    throw std::runtime_error("cannot open a socket in " + netns + ": " + std::strerror(error));
  }
  return result;
}

}  // namespace lanrelay::test
