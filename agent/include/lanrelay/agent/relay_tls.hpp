#pragma once

// Reaching relays over HTTPS, pinned through the site key (docs/security.md, "TLS").
//
// A relay lists the SHA-256 fingerprints of its TLS certificates in its catalog, which the site
// key signs. Bootstrap: the agent fetches the catalog over plain HTTP, verifies its signature
// and learns the fingerprints for that relay; from then on it fetches the catalogs and items of
// the site's relays over https://<host>:<https port>/, accepting only a certificate the site key
// vouched for (http_client's pinned_certificates; no CA, no host name). The pins are kept in
// <state_dir>/relay-tls.json, so the next run starts over HTTPS. A stale pin (the relay renewed
// its certificate) only costs a bootstrap: the catalog is signed, whatever channel brought it.
//
// What the agent knows of a relay is keyed by the relay's identity — the site key that signed
// its catalog and the relay id in it — not by the address it was reached at: a relay offered at
// an IPv4 and an IPv6 address (or renumbered) is one relay, reached over pinned HTTPS at either.
// The pins of a route are every certificate the site key vouched for: any relay of the site
// that holds the private key of one of them is accepted, whichever address it answers at (a
// machine at a relay's address without one is refused).
//
// Modes (--relay-https): off: plain HTTP as before; prefer (default): HTTPS when the relay is
// known, else or on any HTTPS failure plain HTTP; require: items come from relays over pinned
// HTTPS only (a relay that publishes no certificate is not used for items; peers, which sign
// nothing, still serve over HTTP: their bytes are checked against the signed digest).
//
// Thread safety: none; one per fetch.

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/base/site_key.hpp"
#include "lanrelay/upstream/http_client.hpp"

#include <boost/url/url.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

enum class relay_https_mode { off, prefer, require };

// "off", "prefer", "require".
std::optional<relay_https_mode> parse_relay_https_mode(std::string_view text);
std::string_view to_string(relay_https_mode mode) noexcept;

struct relay_https_options {
  relay_https_mode mode = relay_https_mode::prefer;
  std::uint16_t port = 4128;  // the relays' https.port
};

// The https:// twin of a relay's http:// URL and the TLS options that pin it.
struct secure_route {
  boost::urls::url url;
  tls_options tls;
};

class relay_pins {
 public:
  // Loads <state_dir>/relay-tls.json when given; a missing or unreadable file is an empty set.
  // Routes use the relays vouched for by `site_keys`; with none (a fetch trusting a digest),
  // every remembered relay.
  explicit relay_pins(std::optional<std::filesystem::path> state_dir,
                      std::vector<public_key> site_keys = {});

  // The fingerprints the verified catalog of relay `relay_id`, signed with `key`, listed; saved
  // when they changed. An empty list forgets that relay (it serves no HTTPS).
  void learn(const public_key& key, std::string_view relay_id,
             const std::vector<sha256_digest>& fingerprints);

  // Every certificate the site keys in use vouched for, over all their relays; empty when none
  // is known.
  std::vector<sha256_digest> certificates() const;

  // The URL to use over HTTPS for `http_url` (same host, path and query; port options.port),
  // pinned to certificates(); nullopt when the mode is off, the URL is not http:// or no
  // certificate is known.
  std::optional<secure_route> route(const boost::urls::url& http_url,
                                    const relay_https_options& options) const;

 private:
  void save() const;

  std::optional<std::filesystem::path> file_;
  std::vector<std::string> site_keys_;  // as public_key::to_string; empty: all
  // site key text -> relay id -> the certificate fingerprints its catalog listed
  std::map<std::string, std::map<std::string, std::vector<sha256_digest>, std::less<>>, std::less<>>
      relays_;
};

}  // namespace lanrelay::agent
