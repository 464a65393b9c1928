#pragma once

// Which offers an agent may use, and in which order it tries them.

#include "lanrelay/segment/discovery_codec.hpp"

#include <boost/asio/ip/udp.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

// What the agent asked the segment for.
struct wanted_item {
  item_kind kind = item_kind::installer;
  std::string name;
  std::string version;                  // installers: the minimum Major.Minor; others: exact
  std::optional<sha256_digest> sha256;  // the exact bytes wanted, when known
};

// The size and digest a trusted source vouches for, and the digest of the item's piece list
// (content/piece_list.hpp) when that source names one.
struct trusted_digest {
  std::uint64_t size = 0;
  sha256_digest sha256{};
  std::optional<sha256_digest> pieces;

  bool operator==(const trusted_digest&) const = default;
};

// An offer as received: what it says and who sent it.
struct candidate {
  discovery::offer offer;
  boost::asio::ip::udp::endpoint from;
  trusted_digest digest;  // filled by select_offers from the trust lookup
  // Set by select_offers when the URL names another host than the sender and a verified catalog
  // names the URL: connect to the URL's host, not to the sender.
  bool named_by_catalog = false;
  unsigned interface_index = 0;  // the interface the offer arrived on (0: unknown)
};

// Looks up the trusted digest for the item an offer holds (kind, name, version); nullopt when no
// trusted source vouches for it.
using trust_lookup = std::function<std::optional<trusted_digest>(const discovery::offer&)>;

// Whether a catalog verified with a pinned site key names `url` exactly (catalog::urls).
using catalog_url_lookup = std::function<bool(std::string_view url)>;

struct selection {
  std::vector<candidate> ordered;  // the order to try them in
  std::size_t not_qualifying = 0;  // wrong item or version too old
  std::size_t untrusted = 0;       // no trusted digest, or size/SHA-256 differ from it
  std::size_t foreign_host = 0;    // the URL names another host than the datagram's sender
  std::size_t same_host = 0;       // another URL from an address already used here
};

// Whether the offer's URL names the host that sent it: its host is an IP literal equal to the
// datagram's source address (an IPv6 zone is ignored on both sides). A host name, or another
// address, is not the sender: such an offer could send agents to any host and port of the
// network.
bool url_names_sender(const candidate& c);

// Keeps the offers that answer `wanted` (kind and name equal, version_satisfies, SHA-256 equal
// when wanted says one), whose size and SHA-256 equal the trusted digest and whose URL names
// their sender (url_names_sender) or, the one exception, is named exactly by a verified catalog
// (`named`; such an offer gets named_by_catalog), and of those at most one per sending address
// (the first to arrive; duplicate URLs are not counted), so that one host with many URLs counts
// as one holder. Shuffles them uniformly at random so that no responder is swamped, and moves
// those with free transfer slots in front (keeping the random order within each group).
selection select_offers(std::vector<candidate> offers, const wanted_item& wanted,
                        const trust_lookup& trust, std::mt19937_64& random,
                        const catalog_url_lookup& named = {});

}  // namespace lanrelay::agent
