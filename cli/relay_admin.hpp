#pragma once

// Talking to a running lanrelayd's HTTP endpoints from the command line (`lanrelay mirror ...`,
// `lanrelay status`): one request, one response, deadlines on everything.
//
// Channel: plain HTTP to the relay's HTTP port, or, with a site key (--site-key or
// $LANRELAY_SITE_KEY), HTTPS to its HTTPS port pinned through the site key: the CLI first reads
// /-/catalog.signed over HTTP, verifies it with the site key and accepts only a TLS certificate
// whose SHA-256 fingerprint the catalog lists. The relay accepts admin requests and the admin
// token from other hosts over HTTPS only.

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/base/site_key.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::cli {

struct relay_address {
  std::string host = "127.0.0.1";
  std::string port = "4127";
  // Non-empty: talk HTTPS to https_port, accepting only these certificates (use_site_key).
  std::vector<sha256_digest> pinned_certificates;
  std::string https_port = "4128";
};

// "HOST", "HOST:PORT", "[V6]:PORT". Throws command_error when malformed.
relay_address parse_relay_address(std::string_view text);

// A pinned key given as its text (lanrelay-ed25519:...) or as a file holding that text. Throws
// command_error.
public_key read_site_key(const std::string& value);

// `option` (--site-key), else $LANRELAY_SITE_KEY; empty when neither is set.
std::string site_key_setting(const std::string& option);

// Switches `relay` to pinned HTTPS: fetches and verifies its signed catalog with `key` and pins
// the certificates it lists. Throws command_error (what failed and what to do).
void use_site_key(relay_address& relay, const public_key& key, std::chrono::seconds timeout);

// The relay named by `text` (parse_relay_address), reached over pinned HTTPS on `https_port` when
// a site key is set (`site_key_option`, else $LANRELAY_SITE_KEY), else over plain HTTP.
relay_address relay_for(std::string_view text, const std::string& site_key_option,
                        const std::string& https_port, std::chrono::seconds timeout);

struct relay_reply {
  unsigned status = 0;
  std::string body;
};

// Sends `method target` to the relay and returns its answer. Throws command_error (with what to
// do) when the relay cannot be reached or does not answer within `timeout`. A non-empty
// `admin_token` is sent as `Authorization: Bearer <token>` (admin endpoints, [admin] token).
relay_reply relay_request(const relay_address& relay, std::string_view method,
                          std::string_view target, std::chrono::seconds timeout,
                          std::string_view admin_token = {});

// The admin token for endpoints that change the relay: $LANRELAY_ADMIN_TOKEN, else the first line
// of `token_file` when given. Empty when neither is set (the relay then answers 401 or 403).
std::string admin_token(const std::string& token_file);

}  // namespace lanrelay::cli
