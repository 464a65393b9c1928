#include "lanrelay/serving/admin_access.hpp"

#include <boost/beast/core/string.hpp>
#include <openssl/crypto.h>

namespace lanrelay {
namespace {

namespace ip = boost::asio::ip;
namespace http = boost::beast::http;

sha256_digest digest_of(std::string_view text) {
  return sha256_of(std::as_bytes(std::span(text.data(), text.size())));
}

// The credentials of "Bearer <token>" (scheme case-insensitive, RFC 9110 §11.1); empty otherwise.
std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size() ||
      !boost::beast::iequals(authorization.substr(0, scheme.size()), scheme) ||
      authorization[scheme.size()] != ' ') {
    return {};
  }
  auto token = authorization.substr(scheme.size() + 1);
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  while (!token.empty() && token.back() == ' ') {
    token.remove_suffix(1);
  }
  return token;
}

access_decision refuse(http::status status, std::string message, bool challenge = false) {
  return access_decision{false, status, challenge, std::move(message)};
}

}  // namespace

bool is_valid_network(std::string_view text) { return network_list::is_valid(text); }

ip::address unmapped(const ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, address.to_v6());
  }
  return address;
}

result<access_policy> access_policy::from_networks(const std::vector<std::string>& read_networks) {
  return from_config(admin_settings{{}, read_networks});
}

result<access_policy> access_policy::from_config(const admin_settings& settings) {
  access_policy policy;
  if (!settings.token.empty()) {
    policy.token_digest_ = digest_of(settings.token);
  }
  auto networks = network_list::parse(settings.read_networks);
  if (!networks) {
    return make_error_code(boost::system::errc::invalid_argument);
  }
  policy.read_networks_ = std::move(*networks);
  return policy;
}

access_decision access_policy::check(endpoint_access access,
                                     const std::optional<ip::address>& client, bool secure,
                                     std::string_view authorization) const {
  const std::optional<ip::address> address =
      client ? std::optional(unmapped(*client)) : std::nullopt;
  const bool loopback = address && address->is_loopback();
  const bool listed = loopback || (address && read_networks_.contains(*address));
  if (!listed) {
    return refuse(http::status::forbidden,
                  "this address may not use the status and admin endpoints: they answer loopback "
                  "and the networks in [admin] read_networks only");
  }
  if (access == endpoint_access::read) {
    return access_decision{true};
  }
  if (!secure && !loopback) {
    return refuse(http::status::forbidden,
                  "admin requests from other hosts are accepted over HTTPS only, so that the "
                  "admin token never crosses the network in clear: use the HTTPS port (lanrelay "
                  "pins it with --site-key); the token was not checked");
  }
  if (!token_digest_) {
    return refuse(http::status::forbidden,
                  "admin endpoints are disabled: no [admin] token is configured on this daemon");
  }
  const auto presented = bearer_token(authorization);
  if (presented.empty()) {
    return refuse(http::status::unauthorized,
                  "this endpoint needs the admin token: Authorization: Bearer <token>", true);
  }
  const auto digest = digest_of(presented);
  if (CRYPTO_memcmp(digest.data(), token_digest_->data(), digest.size()) != 0) {
    return refuse(http::status::unauthorized, "wrong admin token", true);
  }
  return access_decision{true};
}

access_decision access_policy::content(const request_origin&) const {
  return access_decision{true};
}

access_decision access_policy::monitoring(const request_origin& origin) const {
  return check(endpoint_access::read, origin.client, origin.secure, {});
}

access_decision access_policy::admin(const request_origin& origin,
                                     std::string_view authorization) const {
  return check(endpoint_access::admin, origin.client, origin.secure, authorization);
}

access_decision access_policy::mirror_sync(const request_origin& origin,
                                           std::string_view authorization) const {
  // The admin rule already holds a sync from another host to HTTPS; said here once more because
  // a sync starts upstream traffic and disk writes, whatever becomes of the admin rule.
  auto decision = admin(origin, authorization);
  if (decision.allowed && !origin.secure &&
      !(origin.client && unmapped(*origin.client).is_loopback())) {
    return refuse(http::status::forbidden,
                  "admin requests from other hosts are accepted over HTTPS only");
  }
  return decision;
}

}  // namespace lanrelay
