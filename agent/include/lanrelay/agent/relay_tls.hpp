#pragma once

// Reaching relays over HTTPS, pinned through the site key (docs/security.md, "TLS").
//
// A relay lists the SHA-256 fingerprints of its TLS certificates in its catalog, which the site
// key signs. Bootstrap: the agent fetches the catalog over plain HTTP, verifies its signature
// and learns the fingerprints for that relay's host; from then on it fetches the relay's catalog
// and items over https://<host>:<https port>/, accepting only a certificate with one of those
// fingerprints (http_client's pinned_certificates; no CA, no host name). The pins are kept in
// <state_dir>/relay-tls.json, so the next run starts over HTTPS. A stale pin (the relay renewed
// its certificate) only costs a bootstrap: the catalog is signed, whatever channel brought it.
//
// Modes (--relay-https): off: plain HTTP as before; prefer (default): HTTPS when the relay is
// known, else or on any HTTPS failure plain HTTP; require: items come from relays over pinned
// HTTPS only (a relay that publishes no certificate is not used for items; peers, which sign
// nothing, still serve over HTTP: their bytes are checked against the signed digest).
//
// Thread safety: none; one per fetch.

#include "lanrelay/base/sha256.hpp"
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
  explicit relay_pins(std::optional<std::filesystem::path> state_dir);

  // The fingerprints a verified catalog from `host` listed; saved when they changed. An empty
  // list forgets the host (the relay serves no HTTPS).
  void learn(std::string_view host, const std::vector<sha256_digest>& fingerprints);

  // The pins of `host`; empty when unknown.
  std::vector<sha256_digest> find(std::string_view host) const;

  // The URL to use over HTTPS for `http_url` (same host, path and query; port options.port),
  // pinned; nullopt when the mode is off, the URL is not http:// or its host has no pins.
  std::optional<secure_route> route(const boost::urls::url& http_url,
                                    const relay_https_options& options) const;

 private:
  void save() const;

  std::optional<std::filesystem::path> file_;
  std::map<std::string, std::vector<sha256_digest>, std::less<>> pins_;
};

}  // namespace lanrelay::agent
