#pragma once

// Settings that lanrelayd and proxyhelperd both have, with the same meaning and checks: the
// HTTPS listener ([https]) and who may read monitoring endpoints ([admin]). Each daemon lists
// them in its own settings table (relay/config.cpp, proxyhelper/src/config.cpp).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lanrelay {

// [https]: the TLS listener beside the plain HTTP one (same listen address). Item downloads stay
// on plain HTTP for vendor agents; admin endpoints and the admin token need HTTPS or loopback.
// Default port 4128, next to 4127: the vendor's relays use 4122, which a lanrelay may share a
// host with (docs/operations.md).
struct https_settings {
  bool enabled = true;
  std::uint16_t port = 4128;
  // Both empty: a self-signed pair generated at first start in the state directory (tls.crt and
  // tls.key for lanrelayd). Set both to use your own.
  std::filesystem::path certificate;
  std::filesystem::path private_key;
  std::chrono::milliseconds handshake_timeout{10'000};  // TLS handshake after accept
};



// [admin]: who may use the relay's monitoring and admin endpoints (common/admin_access.hpp).
struct admin_settings {
  // Bearer token required by endpoints that change anything; empty: they are refused (403).
  std::string token;
  // Networks (CIDR, or single addresses) allowed, besides loopback, to read /, /-/status,
  // /-/metrics, /-/stats, /-/mirror and to reach the admin endpoints at all; empty: loopback only.
  std::vector<std::string> read_networks;
};



}  // namespace lanrelay
