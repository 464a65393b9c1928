#pragma once

// Rate limiting per source address for the segment responders (lanrelayd's discovery responder,
// proxyhelperd's proxy query responder), built to hold under a flood of datagrams from invented
// source addresses: any host on the segment can send from as many link-local IPv6 (fe80::/10)
// or on-subnet IPv4 addresses as it likes.
//
// Memory is fixed: a table of entry_count token buckets, way_count-way set associative, allocated once.
// A source's set is picked by a hash keyed with a random value of this limiter (not
// cryptographic; the key is never sent anywhere), so a sender cannot aim invented addresses at
// the set of a given victim. Each datagram costs one hash and a look at way_count entries: O(1), no
// allocation, no sweep.
//
// Known sources and newcomers: a source with an entry spends its own bucket (`rate` per second,
// two seconds' worth of burst). A source without one is a newcomer: it is admitted only with a
// token from the newcomer bucket shared by all new sources of its address family arriving on
// the same interface (`new_source_rate` per second, one second's worth of burst), and only then
// gets an entry. A flood of invented addresses thus spends that newcomer bucket and is dropped
// at once; the buckets of sources already known, and the newcomers of the other family or of
// other interfaces, are untouched.
//
// Replacement: a newcomer takes, in its set, a free way; else the least recently used
// probationary entry (a source not yet seen again at least `establish_after` after its first
// datagram, which is what every invented address is); else the least recently used established
// entry idle long enough for its bucket to be full; else it is admitted without an entry. So a
// source that keeps querying is never pushed out by newcomers, however many there are.
//
// Thread safety: none; each responder runs its limiter on its own strand.

#include "lanrelay/segment/address_hash.hpp"
#include "lanrelay/segment/interfaces.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lanrelay {

class source_rate_limiter {
 public:
  static constexpr std::size_t way_count = 4;
  static constexpr std::size_t set_count = 4096;
  static constexpr std::size_t entry_count = way_count * set_count;
  // A probationary source is established once it is seen again this long after its first datagram.
  static constexpr std::chrono::seconds establish_after{1};

  struct settings {
    std::uint32_t rate = 20;              // per known source, per second (burst: 2 s)
    std::uint32_t new_source_rate = 500;  // per family and interface, per second (burst: 1 s)
  };

  enum class verdict {
    admitted,
    source_over_rate,     // a known source beyond its own rate
    newcomers_over_rate,  // a new source while the newcomer bucket is empty
  };

  explicit source_rate_limiter(settings s);

  // Spends a token for one datagram from `source` arriving on interface `interface_index`
  // (IPv4-mapped IPv6 addresses count as IPv4).
  verdict admit(const boost::asio::ip::address& source, unsigned interface_index,
                std::chrono::steady_clock::time_point now);

  // New rates from now on (configuration reload); tracked sources keep their entries.
  void update(settings s) noexcept { settings_ = s; }
  const settings& current() const noexcept { return settings_; }

  // Entries in use (at most entry_count).
  std::size_t tracked() const noexcept { return tracked_; }

 private:
  using address_bytes = address_hash::address_bytes;
  struct entry {
    address_bytes address{};
    unsigned interface = 0;
    bool used = false;
    bool established = false;
    float tokens = 0;
    std::chrono::steady_clock::time_point first_seen;
    std::chrono::steady_clock::time_point updated;
  };
  struct newcomer_bucket {
    unsigned interface = 0;
    bool v6 = false;
    double tokens = 0;
    std::chrono::steady_clock::time_point updated;
  };

  std::size_t set_of(const address_bytes& address, unsigned interface) const noexcept;
  bool take_newcomer_token(bool v6, unsigned interface, std::chrono::steady_clock::time_point now);
  entry* victim(entry* ways, std::chrono::steady_clock::time_point now) noexcept;

  settings settings_;
  address_hash hash_;
  std::unique_ptr<entry[]> table_;  // entry_count, set s at [s * way_count, (s + 1) * way_count)
  std::size_t tracked_ = 0;
  // One per (family, interface) seen; interfaces come from the kernel, not from senders, so this
  // stays as small as the machine's interface list.
  std::vector<newcomer_bucket> newcomers_;
};

// Whether `source` may be a single sender on `arrival`: not port 0, not unspecified, not
// multicast, not the IPv4 limited broadcast, and not the network or directed broadcast address of
// one of the arrival interface's IPv4 prefixes (/31 and /32 prefixes have neither). No single host
// sends from such an address; answering one would reflect an offer to a whole subnet or to nobody.
bool is_unicast_sender(const boost::asio::ip::udp::endpoint& source,
                       const network_interface& arrival) noexcept;

}  // namespace lanrelay
