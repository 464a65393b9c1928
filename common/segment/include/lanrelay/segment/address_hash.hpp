#pragma once

// A keyed hash of (address, interface) for the fixed tables that track segment sources
// (source_rate_limiter, reply_gate). The key is random per process, so a host on the segment
// cannot choose addresses that land in one slot and push out the entries of others.
//
// Immutable after construction; safe to call from any thread.

#include <array>
#include <cstdint>

namespace lanrelay {

class address_hash {
 public:
  using address_bytes = std::array<unsigned char, 16>;  // IPv4 as ::ffff:a.b.c.d

  address_hash();  // draws the key from std::random_device

  std::uint64_t operator()(const address_bytes& address, unsigned interface) const noexcept;

 private:
  std::uint64_t key0_;
  std::uint64_t key1_;
};

}  // namespace lanrelay
