#include "relay_admin.hpp"

#include "command_error.hpp"

#include "lanrelay/upstream/http_client.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace lanrelay::cli {

relay_address parse_relay_address(std::string_view text) {
  relay_address out;
  if (text.empty()) {
    return out;
  }
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || (close + 1 < text.size() && text[close + 1] != ':')) {
      throw command_error("'" + std::string(text) + "' is not HOST, HOST:PORT or [IPv6]:PORT");
    }
    out.host = std::string(text.substr(1, close - 1));
    if (close + 1 < text.size()) {
      out.port = std::string(text.substr(close + 2));
    }
  } else if (const auto colon = text.rfind(':');
             colon != std::string_view::npos && text.find(':') == colon) {
    out.host = std::string(text.substr(0, colon));
    out.port = std::string(text.substr(colon + 1));
  } else {
    out.host = std::string(text);
  }
  if (out.host.empty() || out.port.empty() ||
      out.port.find_first_not_of("0123456789") != std::string::npos) {
    throw command_error("'" + std::string(text) + "' is not HOST, HOST:PORT or [IPv6]:PORT");
  }
  return out;
}

public_key read_site_key(const std::string& value) {
  if (auto key = parse_public_key(value)) {
    return *key;
  }
  std::ifstream in(value);
  if (!in) {
    throw command_error("--site-key '" + value +
                        "' is neither a public key (lanrelay-ed25519:...) nor a readable file");
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string content = text.str();
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r' ||
                              content.back() == ' ')) {
    content.pop_back();
  }
  auto key = parse_public_key(content);
  if (!key) {
    throw command_error("--site-key file " + value + ": " + key.error().message());
  }
  return *key;
}

std::string site_key_setting(const std::string& option) {
  if (!option.empty()) {
    return option;
  }
  const char* env = std::getenv("LANRELAY_SITE_KEY");
  return env != nullptr ? std::string(env) : std::string();
}

void use_site_key(relay_address& relay, const public_key& key, std::chrono::seconds timeout) {
  relay_address plain = relay;
  plain.pinned_certificates.clear();
  const auto reply = relay_request(plain, "GET", "/-/catalog.signed", timeout);
  const std::string where = relay.host + ":" + relay.port;
  if (reply.status != 200) {
    throw command_error("lanrelayd at " + where + " answered " + std::to_string(reply.status) +
                        " for its signed catalog; it needs its site key ([trust] site_key) to "
                        "be reached over pinned HTTPS");
  }
  auto verified = verify_catalog(reply.body, key, std::chrono::system_clock::now());
  if (!verified) {
    throw command_error("the catalog of lanrelayd at " + where + " was refused: " +
                        verified.error().message());
  }
  if (verified->tls_certificates.empty()) {
    throw command_error("lanrelayd at " + where + " lists no TLS certificate in its catalog: "
                        "is [https] enabled there?");
  }
  relay.pinned_certificates = verified->tls_certificates;
}

relay_address relay_for(std::string_view text, const std::string& site_key_option,
                        const std::string& https_port, std::chrono::seconds timeout) {
  auto relay = parse_relay_address(text);
  if (https_port.empty() || https_port.find_first_not_of("0123456789") != std::string::npos) {
    throw command_error("--https-port '" + https_port + "' is not a port number");
  }
  relay.https_port = https_port;
  if (const auto key = site_key_setting(site_key_option); !key.empty()) {
    use_site_key(relay, read_site_key(key), timeout);
  }
  return relay;
}

relay_reply relay_request(const relay_address& relay, std::string_view method,
                          std::string_view target, std::chrono::seconds timeout,
                          std::string_view admin_token) {
  const bool secure = !relay.pinned_certificates.empty();
  const auto& port = secure ? relay.https_port : relay.port;
  boost::system::error_code address_error;
  const auto address = boost::asio::ip::make_address(relay.host, address_error);
  const std::string host =
      !address_error && address.is_v6() ? "[" + relay.host + "]" : relay.host;
  const std::string where = relay.host + ":" + port;
  const std::string text =
      std::string(secure ? "https://" : "http://") + host + ":" + port + std::string(target);
  const auto url = boost::urls::parse_uri(text);  // a view of `text`
  if (!url) {
    throw command_error("'" + where + std::string(target) + "' is not a usable URL");
  }
  fetch_request request;
  request.url = *url;
  request.post = method == "POST";
  request.every_status_body = true;
  request.timeouts = {timeout, timeout, timeout};
  // Pinned: the certificate is trusted for its fingerprint alone (tls_options in http_client.hpp).
  request.tls.pinned_certificates = relay.pinned_certificates;
  if (!admin_token.empty()) {
    request.bearer_token = std::string(admin_token);
  }
  constexpr std::size_t max_reply = 16U << 20;
  relay_reply reply;
  bool oversized = false;
  const auto response =
      http_fetch_blocking(request, [&](std::span<const std::byte> chunk) -> result<void> {
        if (reply.body.size() + chunk.size() > max_reply) {
          oversized = true;
          return make_error_code(errc::too_large);
        }
        reply.body.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
        return {};
      });
  if (!response && response.error() == http_errc::certificate_not_pinned) {
    throw command_error("lanrelayd at " + where +
                        " presented a TLS certificate that its catalog signed with the site key "
                        "does not list: another machine may be answering there; nothing was "
                        "sent");
  }
  if (!response) {
    throw command_error("cannot reach lanrelayd: " + describe_fetch_error(request, response.error()) +
                        (oversized ? " (an answer over 16 MiB)" : "") +
                        "; is lanrelayd running there (systemctl status lanrelayd)?");
  }
  reply.status = response->status;
  return reply;
}

std::string admin_token(const std::string& token_file) {
  if (const char* env = std::getenv("LANRELAY_ADMIN_TOKEN"); env != nullptr && env[0] != '\0') {
    return env;
  }
  if (token_file.empty()) {
    return {};
  }
  std::ifstream in(token_file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    throw command_error("cannot read the admin token from " + token_file);
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
    line.pop_back();
  }
  return line;
}

}  // namespace lanrelay::cli
