#include "lanrelay/segment/proxy_codec.hpp"
#include "lanrelay/segment/tlv_datagram.hpp"

#include <boost/asio/ip/network_v4.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <string>
#include <utility>

namespace lanrelay::proxy_protocol {
namespace {

std::string proxy_message(errc value) {
  switch (value) {
    case errc::truncated:
      return "proxy datagram is truncated: a field runs past its end";
    case errc::bad_magic:
      return "not a lanrelay proxy datagram (no LNPX magic); another service may use this port";
    case errc::unsupported_version:
      return "proxy protocol version not supported; upgrade the older lanrelay side";
    case errc::wrong_type:
      return "proxy message type is not the one expected here";
    case errc::missing_field:
      return "proxy datagram lacks a mandatory field";
    case errc::duplicate_field:
      return "proxy datagram repeats a field";
    case errc::invalid_field:
      return "proxy datagram field has a bad length or value";
    case errc::too_large:
      return "proxy datagram is larger than allowed";
    case errc::unpadded:
      return "proxy query is shorter than the padded query size; dropped so that answers "
             "cannot amplify traffic";
    case errc::wrong_transaction:
      return "proxy answer is not for this query";
    case errc::unsigned_answer:
      return "proxy answer is not signed; pin the proxyhelperd key, or accept unsigned answers "
             "explicitly";
    case errc::no_pinned_key:
      return "proxy answer is signed but no proxyhelperd key is pinned; pin the public key "
             "that proxyhelperd prints";
    case errc::wrong_key:
      return "proxy answer is signed with a key other than the pinned one: a rogue responder, "
             "or proxyhelperd's key was replaced (pin the new key)";
    case errc::bad_signature:
      return "proxy answer signature does not match its content: altered or forged";
    case errc::expired:
      return "proxy answer has expired; check the clocks of this machine and of proxyhelperd";
    case errc::lifetime_too_long:
      return "proxy answer claims a validity longer than allowed; check proxyhelperd's "
             "answer_lifetime and both clocks";
  }
  return "unknown proxy protocol error " + std::to_string(static_cast<int>(value));
}

constexpr std::uint8_t flag_needs_credentials = 0x01;

// Unix seconds of expiry are bounded like catalog times, so every value fits a time_point.
constexpr std::uint64_t max_time = (std::uint64_t{1} << 33) - 1;

constexpr tlv::framing datagram_framing{magic, protocol_version, max_datagram,
                                static_cast<std::uint8_t>(message_type::query), query_datagram_size};
static_assert(tlv::header_size == header_size && tlv::field_header_size == field_header_size);

using tlv::load_be;

using tlv::as_text;

std::optional<auth_scheme> auth_scheme_from_wire(std::uint8_t value) {
  switch (static_cast<auth_scheme>(value)) {
    case auth_scheme::basic:
    case auth_scheme::digest:
    case auth_scheme::ntlm:
    case auth_scheme::negotiate:
      return static_cast<auth_scheme>(value);
  }
  return std::nullopt;
}

std::string join_bypass(const std::vector<std::string>& entries) {
  std::string out;
  for (const auto& e : entries) {
    if (!out.empty()) {
      out += ',';
    }
    out += e;
  }
  return out;
}

bool is_valid_bypass_list(const std::vector<std::string>& entries) {
  return std::all_of(entries.begin(), entries.end(), is_valid_bypass_entry) &&
         join_bypass(entries).size() <= max_bypass_length;
}

bool is_valid_entry(const proxy_entry& p) {
  return is_valid_proxy_url(p.url) && is_valid_bypass_list(p.bypass) &&
         (!p.auth || auth_scheme_from_wire(static_cast<std::uint8_t>(*p.auth)));
}

std::size_t entry_value_size(const proxy_entry& p) {
  return proxy_entry_fixed_size + p.url.size() + join_bypass(p.bypass).size();
}

std::optional<proxy_entry> read_proxy_entry(std::span<const std::byte> value) {
  if (value.size() < proxy_entry_fixed_size) {
    return std::nullopt;
  }
  proxy_entry p;
  p.priority = load_be<std::uint16_t>(value.first(2));
  const auto flags = std::to_integer<std::uint8_t>(value[2]);
  const auto url_length = std::to_integer<std::size_t>(value[3]);
  if ((flags & ~flag_needs_credentials) != 0 || value.size() < proxy_entry_fixed_size + url_length) {
    return std::nullopt;
  }
  p.needs_credentials = (flags & flag_needs_credentials) != 0;
  p.url = as_text(value.subspan(proxy_entry_fixed_size, url_length));
  const auto bypass = as_text(value.subspan(proxy_entry_fixed_size + url_length));
  if (!is_valid_proxy_url(p.url) || bypass.size() > max_bypass_length) {
    return std::nullopt;
  }
  std::size_t start = 0;
  while (start < bypass.size()) {
    const auto comma = std::min(bypass.find(',', start), bypass.size());
    const auto entry = bypass.substr(start, comma - start);
    if (!is_valid_bypass_entry(entry) || (comma == bypass.size() - 1)) {
      return std::nullopt;  // an empty entry, or a trailing comma
    }
    p.bypass.emplace_back(entry);
    start = comma + 1;
  }
  return p;
}

using enum tlv::presence;

// Contract: is_valid_entry(p).
void write_proxy(tlv::writer<field_type>& w, const proxy_entry& p) {
  const auto bypass = join_bypass(p.bypass);
  w.header(field_type::proxy, proxy_entry_fixed_size + p.url.size() + bypass.size());
  w.put_uint(p.priority);
  w.put_uint(static_cast<std::uint8_t>(p.needs_credentials ? flag_needs_credentials : 0));
  w.put_uint(static_cast<std::uint8_t>(p.url.size()));
  w.append(p.url);
  w.append(bypass);
}

std::uint64_t unix_seconds(std::chrono::system_clock::time_point t) noexcept {
  const auto s = std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
  return s < 0 ? 0 : static_cast<std::uint64_t>(s);
}

// An answer being decoded, with what decode_answer checks once every field is read: proxy_auth
// fields as (proxy index, scheme) in datagram order, since they may come before their proxies.
struct answer_reading : answer {
  std::vector<std::pair<std::uint8_t, auth_scheme>> auth;
};

bool read_expiry(const tlv::field& f, answer_reading& out) {
  if (f.value.size() != 8) {
    return false;
  }
  const auto seconds = load_be<std::uint64_t>(f.value);
  if (seconds > max_time) {
    return false;
  }
  out.expires_at = std::chrono::system_clock::time_point(
      std::chrono::seconds(static_cast<std::int64_t>(seconds)));
  return true;
}

void write_expiry(tlv::writer<field_type>& w, const answer& in) {
  w.field_uint(field_type::expires_at, unix_seconds(in.expires_at));
}

bool read_proxy(const tlv::field& f, answer_reading& out) {
  if (out.proxies.size() == max_proxies) {
    return false;
  }
  auto entry = read_proxy_entry(f.value);
  if (!entry) {
    return false;
  }
  out.proxies.push_back(std::move(*entry));
  return true;
}

void write_proxies(tlv::writer<field_type>& w, const answer& in) {
  for (const auto& p : in.proxies) {
    write_proxy(w, p);
  }
}

bool read_proxy_auth(const tlv::field& f, answer_reading& out) {
  if (f.value.size() != proxy_auth_size) {
    return false;
  }
  const auto index = std::to_integer<std::uint8_t>(f.value[0]);
  const auto scheme = auth_scheme_from_wire(std::to_integer<std::uint8_t>(f.value[1]));
  if (!scheme || index >= max_proxies) {
    return false;
  }
  out.auth.emplace_back(index, *scheme);
  return true;
}

// After every proxy, in their order: the canonical encoding (a re-encoded answer is the same
// bytes, so a re-signed one verifies the same).
void write_proxy_auth(tlv::writer<field_type>& w, const answer& in) {
  for (std::size_t i = 0; i < in.proxies.size(); ++i) {
    if (const auto scheme = in.proxies[i].auth) {
      w.header(field_type::proxy_auth, proxy_auth_size);
      w.put_uint(static_cast<std::uint8_t>(i));
      w.put_uint(static_cast<std::uint8_t>(*scheme));
    }
  }
}

bool read_public_key(const tlv::field& f, answer_reading& out) {
  lanrelay::public_key key;
  if (f.value.size() != key.bytes.size()) {
    return false;
  }
  std::copy(f.value.begin(), f.value.end(), key.bytes.begin());
  out.key = key;
  return true;
}

bool read_signature(const tlv::field& f, answer_reading& out) {
  ed25519_signature signature{};
  // Everything before the signature is signed; nothing may follow it, or unsigned bytes would
  // ride along with a valid signature.
  if (f.value.size() != signature.size() || !f.last) {
    return false;
  }
  std::copy(f.value.begin(), f.value.end(), signature.begin());
  out.signature = signature;
  out.signed_size = f.offset;
  return true;
}

// The fields of each message (docs/protocol.md), in the order encode writes them. Padding is
// skipped when read; encode pads a query itself, and writes the key and signature of a signed
// answer after signing the rest.

using query_field = tlv::field_spec<field_type, query>;
constexpr auto query_fields = tlv::describe(message_type::query, std::to_array<query_field>({
    tlv::uint_field<query_field, field_type::transaction_id, &query::transaction_id>(mandatory),
    tlv::uint_field<query_field, field_type::sender_cookie, &query::sender_cookie>(mandatory),
    {field_type::padding, optional},
}));

// An answer lists one proxy field per proxy, and at most one proxy_auth field per proxy.
using answer_field = tlv::field_spec<field_type, answer_reading, answer>;
constexpr auto answer_fields = tlv::describe(message_type::answer, std::to_array<answer_field>({
    tlv::uint_field<answer_field, field_type::transaction_id, &answer::transaction_id>(mandatory),
    tlv::uint_field<answer_field, field_type::sender_cookie, &answer::sender_cookie>(mandatory),
    {field_type::expires_at, mandatory, read_expiry, write_expiry},
    {field_type::proxy, at_least_one, read_proxy, write_proxies},
    {field_type::proxy_auth, any_number, read_proxy_auth, write_proxy_auth},
    {field_type::public_key, optional, read_public_key},
    {field_type::signature, optional, read_signature},
    {field_type::padding, optional},
}));

tlv::writer<field_type> make_writer(message_type type) {
  return {datagram_framing, static_cast<std::uint8_t>(type)};
}

std::vector<std::byte> signed_message(std::span<const std::byte> prefix) {
  std::vector<std::byte> message;
  message.reserve(signature_context.size() + 1 + prefix.size());
  const auto context = std::as_bytes(std::span(signature_context));
  message.insert(message.end(), context.begin(), context.end());
  message.push_back(std::byte{0});
  message.insert(message.end(), prefix.begin(), prefix.end());
  return message;
}

}  // namespace

const boost::system::error_category& proxy_protocol_category() noexcept {
  static const error_category_of<errc> category(
      "lanrelay.proxy", 0x6c6e72792d707278ULL, proxy_message);
  return category;
}

std::string_view to_string(auth_scheme scheme) noexcept {
  switch (scheme) {
    case auth_scheme::basic:
      return "basic";
    case auth_scheme::digest:
      return "digest";
    case auth_scheme::ntlm:
      return "ntlm";
    case auth_scheme::negotiate:
      return "negotiate";
  }
  return "basic";
}

std::optional<auth_scheme> parse_auth_scheme(std::string_view text) noexcept {
  const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
  for (const auto scheme : {auth_scheme::basic, auth_scheme::digest, auth_scheme::ntlm,
                            auth_scheme::negotiate}) {
    const auto word = to_string(scheme);
    if (word.size() == text.size() &&
        std::equal(word.begin(), word.end(), text.begin(),
                   [&](char a, char b) { return a == lower(b); })) {
      return scheme;
    }
  }
  return std::nullopt;
}

bool is_valid_proxy_url(std::string_view text) noexcept {
  if (!tlv::is_http_url(text, max_proxy_url_length)) {
    return false;
  }
  const auto url = boost::urls::parse_absolute_uri(text);
  return !url->has_query() && (url->encoded_path().empty() || url->encoded_path() == "/") &&
         (url->host_type() != boost::urls::host_type::name ||
          url->encoded_host().find('%') == boost::core::string_view::npos);
}

bool is_valid_bypass_entry(std::string_view text) noexcept {
  if (text.empty() || text.size() > 253) {
    return false;
  }
  const auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_' || c == '*' || c == ':' || c == '/' || c == '[' ||
           c == ']';
  };
  if (!std::all_of(text.begin(), text.end(), allowed)) {
    return false;
  }
  const auto star = text.find('*');
  if (star != std::string_view::npos) {
    // Only a leading "*." followed by something without further stars.
    if (star != 0 || text.size() < 3 || text[1] != '.' ||
        text.find('*', 1) != std::string_view::npos) {
      return false;
    }
  }
  return text != "." ;
}

bool bypass_matches(std::string_view entry, std::string_view host) noexcept {
  const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
  const auto iequal = [&](std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
  };
  const auto ends_with = [&](std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && iequal(text.substr(text.size() - suffix.size()), suffix);
  };
  if (entry.starts_with("*.")) {
    return ends_with(host, entry.substr(1)) && host.size() > entry.size() - 1;
  }
  if (entry.starts_with(".")) {
    return ends_with(host, entry) || iequal(host, entry.substr(1));
  }
  if (const auto slash = entry.find('/'); slash != std::string_view::npos) {
    boost::system::error_code ec;
    const auto network = boost::asio::ip::make_network_v4(entry, ec);
    if (ec) {
      return false;
    }
    const auto address = boost::asio::ip::make_address_v4(host, ec);
    return !ec && (address.to_uint() & network.netmask().to_uint()) ==
                      (network.network().to_uint() & network.netmask().to_uint());
  }
  if (entry.starts_with("[") && entry.ends_with("]")) {
    return iequal(entry.substr(1, entry.size() - 2), host);
  }
  return iequal(entry, host);
}

std::vector<std::byte> encode(const query& q) {
  auto w = make_writer(message_type::query);
  tlv::write_fields(w, query_fields, q);
  w.pad_to(field_type::padding, query_datagram_size);
  return std::move(w).take();
}

std::size_t answer_size(std::span<const proxy_entry> proxies, bool is_signed) noexcept {
  std::size_t size = header_size + 3 * (field_header_size + 8);
  for (const auto& p : proxies) {
    size += field_header_size + entry_value_size(p);
    if (p.auth) {
      size += field_header_size + proxy_auth_size;
    }
  }
  if (is_signed) {
    size += 2 * field_header_size + 32 + 64;
  }
  return size;
}

result<std::vector<std::byte>> encode(const answer& a, const site_key* key, std::size_t max_size) {
  if (a.proxies.empty() || a.proxies.size() > max_proxies ||
      !std::all_of(a.proxies.begin(), a.proxies.end(), is_valid_entry) ||
      unix_seconds(a.expires_at) > max_time) {
    return errc::invalid_field;
  }
  if (answer_size(a.proxies, key != nullptr) > std::min(max_size, max_datagram)) {
    return errc::too_large;
  }
  auto w = make_writer(message_type::answer);
  tlv::write_fields(w, answer_fields, a);
  if (key != nullptr) {
    w.field(field_type::public_key, key->public_key().bytes);
    const auto signature = key->sign(signed_message(w.bytes()));
    w.field(field_type::signature, signature);
  }
  return std::move(w).take();
}

result<query> decode_query(std::span<const std::byte> datagram) {
  return tlv::read_message<errc>(datagram, datagram_framing, query_fields);
}

result<answer> decode_answer(std::span<const std::byte> datagram) {
  answer_reading read;
  if (const auto ec = tlv::read_fields<errc>(datagram, datagram_framing, answer_fields, read)) {
    return ec;
  }
  if (read.signature && !read.key) {
    return errc::missing_field;
  }
  // Each proxy_auth names a proxy of this answer, and no proxy has two.
  for (const auto& [index, scheme] : read.auth) {
    if (index >= read.proxies.size() || read.proxies[index].auth) {
      return errc::invalid_field;
    }
    read.proxies[index].auth = scheme;
  }
  answer a = std::move(read);
  if (!a.signature) {
    a.key.reset();  // a key without a signature vouches for nothing
  }
  return a;
}

std::optional<message_type> peek_type(std::span<const std::byte> datagram) noexcept {
  const auto type = tlv::peek_type(datagram, datagram_framing);
  if (type == static_cast<std::uint8_t>(message_type::query) ||
      type == static_cast<std::uint8_t>(message_type::answer)) {
    return static_cast<message_type>(*type);
  }
  return std::nullopt;
}

result<void> check_answer(const answer& a, std::span<const std::byte> datagram,
                          std::uint64_t transaction_id, const answer_trust& trust,
                          std::chrono::system_clock::time_point now) {
  if (a.transaction_id != transaction_id) {
    return errc::wrong_transaction;
  }
  if (!a.signature || !a.key) {
    if (!trust.accept_unsigned) {
      return errc::unsigned_answer;
    }
  } else if (!trust.pinned.empty()) {
    if (std::find(trust.pinned.begin(), trust.pinned.end(), *a.key) == trust.pinned.end()) {
      return errc::wrong_key;
    }
    if (a.signed_size > datagram.size() ||
        !verify(*a.key, signed_message(datagram.first(a.signed_size)), *a.signature)) {
      return errc::bad_signature;
    }
  } else if (!trust.accept_unsigned) {
    return errc::no_pinned_key;
  }
  if (now >= a.expires_at) {
    return errc::expired;
  }
  if (a.expires_at - now > max_answer_lifetime + answer_clock_skew) {
    return errc::lifetime_too_long;
  }
  return {};
}

}  // namespace lanrelay::proxy_protocol
