// libFuzzer target for the admin access decision (common/serving/src/admin_access.cpp): the client address
// and the Authorization field are untrusted. Input: "<address text>\n<Authorization value>".
// Seeds: tests/fuzz/corpus/admin_access/.
//
// Beyond "never crash", it checks the contract against a plain re-statement of it: reading is
// allowed exactly for loopback clients and those in 10.0.0.0/8 (IPv4-mapped included); admin
// exactly for those that also come over HTTPS or from loopback and send "Bearer" (any case), one
// space, and the token with only spaces around it.

#include "lanrelay/serving/admin_access.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

namespace ip = boost::asio::ip;
using namespace lanrelay;

constexpr std::string_view token = "fuzz-admin-token-0123";

void require(bool condition) {
  if (!condition) {
    __builtin_trap();
  }
}

ip::address plain(ip::address address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = ip::make_address_v4(ip::v4_mapped, address.to_v6());
  }
  return address;
}

bool in_ten_slash_eight(const std::optional<ip::address>& client) {
  if (!client) {
    return false;
  }
  const auto address = plain(*client);
  return address.is_v4() && address.to_v4().to_bytes()[0] == 10;
}

bool on_loopback(const std::optional<ip::address>& client) {
  return client && plain(*client).is_loopback();
}

bool presents_token(std::string_view field) {
  constexpr std::string_view scheme = "bearer ";
  if (field.size() < scheme.size()) {
    return false;
  }
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(field[i])) != scheme[i]) {
      return false;
    }
  }
  auto rest = field.substr(scheme.size());
  const auto first = rest.find_first_not_of(' ');
  if (first == std::string_view::npos) {
    return false;
  }
  rest = rest.substr(first, rest.find_last_not_of(' ') - first + 1);
  return rest == token;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const access_policy open =
      *access_policy::from_config(lanrelay::admin_settings{std::string(token), {}});
  static const access_policy limited =
      *access_policy::from_config(lanrelay::admin_settings{std::string(token), {"10.0.0.0/8"}});
  static const access_policy no_token =
      *access_policy::from_config(lanrelay::admin_settings{"", {}});

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto newline = text.find('\n');
  const std::string address_text(text.substr(0, newline));
  const std::string_view field =
      newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);

  boost::system::error_code ec;
  std::optional<ip::address> client = ip::make_address(address_text, ec);
  if (ec) {
    client.reset();
  }

  const bool loopback = on_loopback(client);
  const bool token_ok = presents_token(field);
  for (const bool secure : {false, true}) {
    require(open.check(endpoint_access::read, client, secure, field).allowed == loopback);
    require(open.check(endpoint_access::admin, client, secure, field).allowed ==
            (loopback && token_ok));
    require(!no_token.check(endpoint_access::admin, client, secure, field).allowed);

    const bool listed = loopback || in_ten_slash_eight(client);
    require(limited.check(endpoint_access::read, client, secure, field).allowed == listed);
    const auto admin = limited.check(endpoint_access::admin, client, secure, field);
    require(admin.allowed == (listed && (secure || loopback) && token_ok));
    if (!admin.allowed) {
      require(!admin.message.empty());
    }
  }
  return 0;
}
