#pragma once

// Which offers an agent may use, and in which order it tries them.

#include "lanrelay/common/discovery_codec.hpp"

#include <boost/asio/ip/udp.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <vector>

namespace lanrelay::agent {

// What the agent asked the segment for.
struct wanted_item {
  item_kind kind = item_kind::installer;
  std::string name;
  std::string version;                  // installers: the minimum Major.Minor; others: exact
  std::optional<sha256_digest> sha256;  // the exact bytes wanted, when known
};

// The size and digest a trusted source vouches for.
struct trusted_digest {
  std::uint64_t size = 0;
  sha256_digest sha256{};

  bool operator==(const trusted_digest&) const = default;
};

// An offer as received: what it says and who sent it.
struct candidate {
  discovery::offer offer;
  boost::asio::ip::udp::endpoint from;
  trusted_digest digest;  // filled by select_offers from the trust lookup
};

// Looks up the trusted digest for the item an offer holds (kind, name, version); nullopt when no
// trusted source vouches for it.
using trust_lookup = std::function<std::optional<trusted_digest>(const discovery::offer&)>;

struct selection {
  std::vector<candidate> ordered;  // the order to try them in
  std::size_t not_qualifying = 0;  // wrong item or version too old
  std::size_t untrusted = 0;       // no trusted digest, or size/SHA-256 differ from it
};

// Keeps the offers that answer `wanted` (kind and name equal, version_satisfies, SHA-256 equal
// when wanted says one) and whose size and SHA-256 equal the trusted digest, drops duplicate
// URLs, shuffles them uniformly at random so that no responder is swamped, and moves those with
// free transfer slots in front (keeping the random order within each group).
selection select_offers(std::vector<candidate> offers, const wanted_item& wanted,
                        const trust_lookup& trust, std::mt19937_64& random);

}  // namespace lanrelay::agent
