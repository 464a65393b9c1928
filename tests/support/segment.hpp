#pragma once

// A LAN segment made of network namespaces for segment tests and benchmarks:
//
//   <prefix>sw          the switch: a Linux bridge `br0`, one port per host, no address
//   <prefix>h<N>        one namespace per host; its `eth0` is a veth to the switch with the
//                       address 10.<subnet>.<N / 250>.<N % 250 + 1>/16 (broadcast 10.<subnet>.255.255)
//
// Nothing is created in the test's own namespace and no traffic can reach the machine's real
// interfaces. The destructor deletes every namespace (which removes the veths and the bridge);
// the constructor first removes namespaces left behind by test processes that no longer exist.
// Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <deque>
#include <set>

namespace lanrelay::test {

class segment {
 public:
  struct host {
    std::string name;     // as given to add_host
    std::string netns;    // namespace name, for process::options::netns
    std::string address;  // IPv4 address of eth0; empty on an IPv6-only segment
    std::string link_local;  // IPv6-only segments: fe80::<N + 1>, eth0's only link-local address
    std::string ipv6;        // IPv6-only segments with a prefix: <prefix><N + 1>; else empty
  };

  // ipv4: every host's eth0 has an IPv4 address (and the link-local IPv6 address the kernel
  // makes). ipv6_only: no IPv4 address anywhere; eth0 has the link-local address fe80::<N + 1>/64
  // and, once add_ipv6_prefix was called, <prefix><N + 1>/64 as well. IPv6 addresses are added
  // without duplicate address detection (nodad), so they are usable at once, never tentative.
  enum class addressing { ipv4, ipv6_only };

  explicit segment(std::uint8_t subnet = 77, addressing mode = addressing::ipv4);
  ~segment();
  segment(const segment&) = delete;
  segment& operator=(const segment&) = delete;

  const host& add_host(std::string_view name);
  // Connects a host of another segment to this one as well (a second interface, `seg<subnet>`,
  // appears in its namespace while whatever runs there keeps running).
  const host& attach(const host& existing);
  const std::deque<host>& hosts() const noexcept { return hosts_; }
  std::string broadcast_address() const;
  // IPv6-only segments: gives every host, present and later, an address in `prefix`/64 (such as
  // "fd77::", a ULA prefix) as well.
  void add_ipv6_prefix(std::string_view prefix);

  enum class family { ipv4, ipv6, both };
  // Drops broadcast and multicast UDP of `which` in the switch (ARP and IPv6 neighbour discovery
  // still pass), as cloud networks do.
  void block_broadcast(family which = family::both);
  // Limits every switch port towards its host to `rate` (tc syntax, e.g. "1gbit").
  void shape_ports(std::string_view rate);

  // Whether this machine can build segments (root, ip and nft present).
  static bool supported();

 private:
  void add_ipv6_address(const host& h, const std::string& device, const std::string& address);

  std::string prefix_;
  std::uint8_t subnet_;
  addressing mode_;
  std::string ipv6_prefix_;
  std::deque<host> hosts_;
  std::set<std::size_t> attached_;  // hosts_ entries whose namespace another segment owns  // deque: add_host hands out references that must stay valid
};

// A socket (socket(2) arguments) that lives in `netns`, opened from the calling process.
int socket_in_netns(const std::string& netns, int domain, int type);

// A plain HTTP/1.0 GET from inside `netns`; returns the body, or an empty string on any failure
// (including a status other than 200). Bounded by `timeout`.
std::string http_get_in_netns(const std::string& netns, const std::string& address,
                              std::uint16_t port, const std::string& path,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Runs a shell command line; throws std::runtime_error with its output when it fails.
void run_checked(const std::string& command);

}  // namespace lanrelay::test
