#include "lanrelay/segment/address_hash.hpp"

#include <random>

namespace lanrelay {
namespace {

// The finaliser of MurmurHash3: every input bit reaches every output bit.
std::uint64_t mix(std::uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

std::uint64_t random_u64(std::random_device& random) {
  return (std::uint64_t{random()} << 32) | random();
}

}  // namespace

address_hash::address_hash() {
  std::random_device random;
  key0_ = random_u64(random);
  key1_ = random_u64(random);
}

std::uint64_t address_hash::operator()(const address_bytes& address,
                                       unsigned interface) const noexcept {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    hi = (hi << 8) | address[i];
    lo = (lo << 8) | address[8 + i];
  }
  return mix(mix(hi ^ key0_) + (lo ^ key1_) + interface);
}

}  // namespace lanrelay
