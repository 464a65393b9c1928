#include "lanrelay/base/text_format.hpp"
#include "lanrelay/segment/proxy_codec.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace lanrelay::proxy_protocol {
namespace {

using bytes = std::vector<std::byte>;
using namespace std::chrono_literals;

std::string hex(std::span<const std::byte> data) { return hex_encode(data); }

// The key of the examples in docs/protocol.md: seed bytes 00 01 02 ... 1f.
site_key example_key() {
  std::array<std::byte, 32> seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) {
    seed[i] = static_cast<std::byte>(i);
  }
  return site_key::from_seed(seed).value();
}

site_key other_key() {
  std::array<std::byte, 32> seed{};
  seed.fill(std::byte{0x42});
  return site_key::from_seed(seed).value();
}

const auto example_now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

query example_query() { return query{0x0123456789abcdefULL, 0x1122334455667788ULL}; }

answer example_answer() {
  answer a;
  a.transaction_id = 0x0123456789abcdefULL;
  a.sender_cookie = 0x8877665544332211ULL;
  a.expires_at = example_now + 300s;
  a.proxies.push_back({"http://10.1.0.8:3128", 10, false, {"*.corp.example", "10.0.0.0/8"}});
  a.proxies.push_back({"http://proxy2.corp.example:8080", 20, true, {}});
  return a;
}

answer_trust pinned(const site_key& key) { return answer_trust{{key.public_key()}, false}; }

TEST(proxy_codec, query_is_padded_and_round_trips) {
  const auto encoded = encode(example_query());
  ASSERT_EQ(encoded.size(), query_datagram_size);
  EXPECT_EQ(peek_type(encoded), message_type::query);
  const auto decoded = decode_query(encoded);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(*decoded, example_query());
}

TEST(proxy_codec, short_queries_are_refused_before_their_fields) {
  auto encoded = encode(example_query());
  encoded.resize(query_datagram_size - 1);
  EXPECT_EQ(decode_query(encoded).error(), errc::unpadded);
}

TEST(proxy_codec, signed_answer_round_trips_and_verifies) {
  const auto key = example_key();
  const auto encoded = encode(example_answer(), &key, query_datagram_size);
  ASSERT_TRUE(encoded) << encoded.error().message();
  EXPECT_EQ(encoded->size(), answer_size(example_answer().proxies, true));
  const auto decoded = decode_answer(*encoded);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->proxies, example_answer().proxies);
  EXPECT_EQ(decoded->expires_at, example_answer().expires_at);
  ASSERT_TRUE(decoded->key);
  EXPECT_EQ(*decoded->key, key.public_key());
  EXPECT_EQ(decoded->signed_size, encoded->size() - field_header_size - 64);
  EXPECT_TRUE(check_answer(*decoded, *encoded, 0x0123456789abcdefULL, pinned(key), example_now));
}

TEST(proxy_codec, answer_checks_refuse_what_an_attacker_can_send) {
  const auto key = example_key();
  const auto encoded = encode(example_answer(), &key, query_datagram_size).value();
  const auto decoded = decode_answer(encoded).value();
  const auto txid = example_answer().transaction_id;

  EXPECT_EQ(check_answer(decoded, encoded, txid + 1, pinned(key), example_now).error(),
            errc::wrong_transaction);
  EXPECT_EQ(check_answer(decoded, encoded, txid, pinned(other_key()), example_now).error(),
            errc::wrong_key);
  EXPECT_EQ(check_answer(decoded, encoded, txid, answer_trust{}, example_now).error(),
            errc::no_pinned_key);
  EXPECT_EQ(check_answer(decoded, encoded, txid, pinned(key), example_now + 300s).error(),
            errc::expired);
  EXPECT_EQ(check_answer(decoded, encoded, txid, pinned(key), example_now - 2h).error(),
            errc::lifetime_too_long);

  // A rogue responder signs with its own key: refused by key before any signature work.
  const auto rogue_key = other_key();
  const auto rogue = encode(example_answer(), &rogue_key, query_datagram_size).value();
  EXPECT_EQ(check_answer(decode_answer(rogue).value(), rogue, txid, pinned(key), example_now)
                .error(),
            errc::wrong_key);

  // Unsigned: refused unless explicitly accepted.
  const auto plain = encode(example_answer(), nullptr, query_datagram_size).value();
  const auto plain_decoded = decode_answer(plain).value();
  EXPECT_FALSE(plain_decoded.signature);
  EXPECT_EQ(check_answer(plain_decoded, plain, txid, pinned(key), example_now).error(),
            errc::unsigned_answer);
  EXPECT_TRUE(check_answer(plain_decoded, plain, txid, answer_trust{{}, true}, example_now));

  // One flipped bit anywhere in the signed part (here: the proxy's port) breaks the signature.
  auto altered = encoded;
  const auto port = hex(altered).find(hex(std::as_bytes(std::span(std::string_view("3128")))));
  ASSERT_NE(port, std::string::npos);
  altered[port / 2 + 3] = std::byte{'9'};
  const auto altered_decoded = decode_answer(altered);
  ASSERT_TRUE(altered_decoded);
  EXPECT_EQ(check_answer(*altered_decoded, altered, txid, pinned(key), example_now).error(),
            errc::bad_signature);
}

TEST(proxy_codec, nothing_may_follow_the_signature) {
  const auto key = example_key();
  auto encoded = encode(example_answer(), &key, query_datagram_size).value();
  // An unknown field appended after the signature would ride along unsigned.
  for (const auto b : {0x7f, 0x00, 0x00, 0x00}) {
    encoded.push_back(std::byte(b));
  }
  EXPECT_EQ(decode_answer(encoded).error(), errc::invalid_field);
}

TEST(proxy_codec, signature_needs_its_key) {
  const auto key = example_key();
  auto encoded = encode(example_answer(), &key, query_datagram_size).value();
  // Rename the public key field (code 5) to an unknown code: the signature is then keyless.
  const std::size_t key_field = encoded.size() - (field_header_size + 64) - (field_header_size + 32);
  ASSERT_EQ(encoded[key_field + 1], std::byte{0x05});
  encoded[key_field + 1] = std::byte{0x1f};
  EXPECT_EQ(decode_answer(encoded).error(), errc::missing_field);
}

TEST(proxy_codec, answers_never_exceed_their_query) {
  answer a = example_answer();
  a.proxies.clear();
  for (std::size_t i = 0; i < max_proxies; ++i) {
    a.proxies.push_back({"http://" + std::string(200, 'p') + ".example:3128", 1, false,
                         {std::string(200, 'b')}});
  }
  const auto key = example_key();
  EXPECT_EQ(encode(a, &key, query_datagram_size).error(), errc::too_large);
  EXPECT_GT(answer_size(a.proxies, true), query_datagram_size);
  EXPECT_EQ(encode(example_answer(), &key, 200).error(), errc::too_large);
}

TEST(proxy_codec, encoder_refuses_invalid_content) {
  const auto key = example_key();
  auto no_proxy = example_answer();
  no_proxy.proxies.clear();
  EXPECT_EQ(encode(no_proxy, &key, query_datagram_size).error(), errc::invalid_field);
  for (const std::string url : {"https://p:3128", "http://user:pw@p:3128", "http://p:3128/path",
                                "http://p:0", "http://p:3128?x", "ftp://p", "http://"}) {
    auto a = example_answer();
    a.proxies[0].url = url;
    EXPECT_EQ(encode(a, &key, query_datagram_size).error(), errc::invalid_field) << url;
  }
  for (const std::string entry : {"", "*", "a,b", "foo*", "*.a*", "a b", "x';alert(1);'"}) {
    auto a = example_answer();
    a.proxies[0].bypass = {entry};
    EXPECT_EQ(encode(a, &key, query_datagram_size).error(), errc::invalid_field) << entry;
  }
}

TEST(proxy_codec, validity_rules) {
  EXPECT_TRUE(is_valid_proxy_url("http://10.1.0.8:3128"));
  EXPECT_TRUE(is_valid_proxy_url("http://[fe80::1]:3128/"));
  EXPECT_TRUE(is_valid_proxy_url("http://proxy.corp"));
  EXPECT_FALSE(is_valid_proxy_url("http://[fe80::1%25eth0]:3128"));
  EXPECT_FALSE(is_valid_proxy_url("HTTP://proxy:1"));
  EXPECT_TRUE(is_valid_bypass_entry("*.corp.example"));
  EXPECT_TRUE(is_valid_bypass_entry(".corp.example"));
  EXPECT_TRUE(is_valid_bypass_entry("192.168.0.0/16"));
  EXPECT_TRUE(is_valid_bypass_entry("[fd00::1]"));
  EXPECT_TRUE(is_valid_bypass_entry("localhost"));
  EXPECT_FALSE(is_valid_bypass_entry("."));
}

TEST(proxy_codec, decoder_rejects_by_reason) {
  const auto key = example_key();
  const auto good = encode(example_answer(), &key, query_datagram_size).value();
  EXPECT_EQ(decode_answer(bytes(max_datagram + 1)).error(), errc::too_large);
  EXPECT_EQ(decode_answer(bytes(3)).error(), errc::truncated);
  auto magic = good;
  magic[3] = std::byte{'Y'};
  EXPECT_EQ(decode_answer(magic).error(), errc::bad_magic);
  auto version = good;
  version[4] = std::byte{2};
  EXPECT_EQ(decode_answer(version).error(), errc::unsupported_version);
  EXPECT_EQ(decode_answer(encode(example_query())).error(), errc::wrong_type);
  EXPECT_EQ(decode_query(good).error(), errc::wrong_type);
  auto cut = good;
  cut.resize(cut.size() - 1);
  EXPECT_EQ(decode_answer(cut).error(), errc::truncated);
  // The transaction id twice.
  bytes twice(good.begin(), good.begin() + 18);
  twice.insert(twice.end(), good.begin() + 6, good.end());
  EXPECT_EQ(decode_answer(twice).error(), errc::duplicate_field);
  // Without its proxies: header, txid, cookie, expiry only.
  bytes bare(good.begin(), good.begin() + 6 + 3 * 12);
  EXPECT_EQ(decode_answer(bare).error(), errc::missing_field);
  // A reserved flag bit in the first proxy entry (value offset 2 of the field after expiry).
  auto flags = good;
  flags[6 + 3 * 12 + field_header_size + 2] = std::byte{0x80};
  EXPECT_EQ(decode_answer(flags).error(), errc::invalid_field);
  EXPECT_EQ(peek_type(bytes(2)), std::nullopt);
}

TEST(proxy_codec, random_mutations_never_crash_and_never_verify) {
  const auto key = example_key();
  const auto good = encode(example_answer(), &key, query_datagram_size).value();
  std::mt19937 random(5);
  std::size_t verified = 0;
  for (int i = 0; i < 20'000; ++i) {
    auto mutated = good;
    const int flips = 1 + static_cast<int>(random() % 4);
    for (int f = 0; f < flips; ++f) {
      mutated[random() % mutated.size()] ^= static_cast<std::byte>(1u << (random() % 8));
    }
    if (mutated == good) {
      continue;  // the same bit flipped twice
    }
    if (const auto a = decode_answer(mutated)) {
      verified += check_answer(*a, mutated, a->transaction_id, pinned(key), example_now) ? 1 : 0;
    }
  }
  EXPECT_EQ(verified, 0u);
}

// The scheme a proxy asks for travels in field 0x0008 after the proxies; a proxy without one
// sends nothing (the golden bytes below have none).
TEST(proxy_codec, the_auth_scheme_of_a_proxy_round_trips_and_is_signed) {
  const auto key = example_key();
  auto a = example_answer();
  a.proxies[1].auth = auth_scheme::ntlm;
  const auto encoded = encode(a, &key, query_datagram_size);
  ASSERT_TRUE(encoded) << encoded.error().message();
  EXPECT_EQ(encoded->size(), answer_size(a.proxies, true));
  EXPECT_EQ(encoded->size(), encode(example_answer(), &key, query_datagram_size)->size() +
                                 field_header_size + proxy_auth_size);
  // 00 08 | 00 02 | proxy 1 | ntlm (3)
  EXPECT_NE(hex(*encoded).find("0008000201030005"), std::string::npos) << hex(*encoded);
  const auto decoded = decode_answer(*encoded);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->proxies, a.proxies);
  EXPECT_EQ(decoded->proxies[0].auth, std::nullopt);
  EXPECT_EQ(decoded->proxies[1].auth, auth_scheme::ntlm);
  EXPECT_TRUE(check_answer(*decoded, *encoded, a.transaction_id, pinned(key), example_now));
  // Changing the scheme breaks the signature.
  auto altered = *encoded;
  const auto at = hex(altered).find("000800020103") / 2;
  altered[at + 5] = std::byte{1};
  const auto forged = decode_answer(altered);
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->proxies[1].auth, auth_scheme::basic);
  EXPECT_EQ(check_answer(*forged, altered, a.transaction_id, pinned(key), example_now).error(),
            errc::bad_signature);
}

TEST(proxy_codec, auth_fields_that_name_no_proxy_or_no_scheme_are_refused) {
  auto a = example_answer();
  a.proxies[0].auth = auth_scheme::basic;
  const auto good = encode(a, nullptr, query_datagram_size).value();
  ASSERT_TRUE(decode_answer(good));
  const auto field = hex(good).find("000800020001") / 2;
  const auto with = [&](std::uint8_t index, std::uint8_t scheme) {
    auto b = good;
    b[field + 4] = std::byte{index};
    b[field + 5] = std::byte{scheme};
    return decode_answer(b);
  };
  EXPECT_TRUE(with(1, 4));
  EXPECT_EQ(with(1, 4)->proxies[1].auth, auth_scheme::negotiate);
  EXPECT_EQ(with(2, 1).error(), errc::invalid_field);  // only two proxies
  EXPECT_EQ(with(8, 1).error(), errc::invalid_field);
  EXPECT_EQ(with(0, 0).error(), errc::invalid_field);  // no scheme 0
  EXPECT_EQ(with(0, 5).error(), errc::invalid_field);  // nor 5
  // Two schemes for the same proxy.
  bytes twice(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(field + 6));
  twice.insert(twice.end(), good.begin() + static_cast<std::ptrdiff_t>(field), good.end());
  EXPECT_EQ(decode_answer(twice).error(), errc::invalid_field);
  // A second one for the other proxy is fine.
  bytes both(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(field + 6));
  both.insert(both.end(), good.begin() + static_cast<std::ptrdiff_t>(field), good.end());
  both[field + 6 + 4] = std::byte{1};
  both[field + 6 + 5] = std::byte{2};
  const auto decoded = decode_answer(both);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->proxies[0].auth, auth_scheme::basic);
  EXPECT_EQ(decoded->proxies[1].auth, auth_scheme::digest);
  // The wrong length.
  auto longer = good;
  longer[field + 3] = std::byte{3};
  longer.insert(longer.begin() + static_cast<std::ptrdiff_t>(field + 6), std::byte{0});
  EXPECT_EQ(decode_answer(longer).error(), errc::invalid_field);
}

TEST(proxy_codec, auth_scheme_words) {
  for (const auto scheme : {auth_scheme::basic, auth_scheme::digest, auth_scheme::ntlm,
                            auth_scheme::negotiate}) {
    EXPECT_EQ(parse_auth_scheme(to_string(scheme)), scheme);
  }
  EXPECT_EQ(parse_auth_scheme("NTLM"), auth_scheme::ntlm);
  EXPECT_EQ(parse_auth_scheme("Negotiate"), auth_scheme::negotiate);
  EXPECT_EQ(parse_auth_scheme("kerberos"), std::nullopt);
  EXPECT_EQ(parse_auth_scheme(""), std::nullopt);
}

constexpr std::string_view golden_answer_hex =
    "4c4e50580102000100080123456789abcdef0002000888776655443322110003"
    "0008000000006b49d32c00040031000a0014687474703a2f2f31302e312e302e"
    "383a333132382a2e636f72702e6578616d706c652c31302e302e302e302f3800"
    "0400230014011f687474703a2f2f70726f7879322e636f72702e6578616d706c"
    "653a383038300005002003a107bff3ce10be1d70dd18e74bc09967e4d6309ba5"
    "0d5f1ddc8664125531b800060040aa987dedf2c15a7b232de0d0b612db0e7219"
    "6472dad4909f52fe6c4cc1f70c1444393010d72a589894d1deef2f557b2c5219"
    "ef3694c001b3f7105fb328a4c70b";

// The dumps of docs/protocol.md ("Proxy protocol", "Examples").
TEST(proxy_codec, golden_bytes_match_the_spec) {
  const auto key = example_key();
  EXPECT_EQ(key.public_key().to_string(),
            "lanrelay-ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=");
  const auto q = encode(example_query());
  EXPECT_EQ(hex(std::span(q).first(0x22)),
            "4c4e50580101000100080123456789abcdef0002000811223344556677880007048e");
  const auto a = encode(example_answer(), &key, query_datagram_size).value();
  EXPECT_EQ(hex(a), golden_answer_hex);
}

// Writes the fuzzing seeds (tests/fuzz/corpus/proxy_answer/). Run by hand with
// LANRELAY_PROXY_SEEDS=tests/fuzz/corpus/proxy_answer, --gtest_also_run_disabled_tests and
// --gtest_filter='*write_fuzz_seeds*'.
TEST(proxy_codec, DISABLED_write_fuzz_seeds) {
  const char* dir = std::getenv("LANRELAY_PROXY_SEEDS");
  ASSERT_NE(dir, nullptr);
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, const bytes& data) {
    std::ofstream(std::filesystem::path(dir) / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  };
  const auto key = example_key();
  write("answer_signed", encode(example_answer(), &key, query_datagram_size).value());
  write("answer_unsigned", encode(example_answer(), nullptr, query_datagram_size).value());
  auto one = example_answer();
  one.proxies.resize(1);
  one.proxies[0].bypass.clear();
  write("answer_one_proxy", encode(one, &key, query_datagram_size).value());
  auto schemes = example_answer();
  schemes.proxies[0].auth = auth_scheme::negotiate;
  schemes.proxies[1].auth = auth_scheme::ntlm;
  write("answer_auth_schemes", encode(schemes, &key, query_datagram_size).value());
  write("query", encode(example_query()));
}

}  // namespace
}  // namespace lanrelay::proxy_protocol

namespace lanrelay::proxy_protocol {
namespace {

TEST(proxy_codec, bypass_entries_match_like_the_generated_pac) {
  EXPECT_TRUE(bypass_matches("*.corp.example", "www.Corp.Example"));
  EXPECT_FALSE(bypass_matches("*.corp.example", "corp.example"));
  EXPECT_FALSE(bypass_matches("*.corp.example", "evilcorp.example"));
  EXPECT_TRUE(bypass_matches(".corp.example", "corp.example"));
  EXPECT_TRUE(bypass_matches(".corp.example", "a.b.corp.example"));
  EXPECT_TRUE(bypass_matches("10.0.0.0/8", "10.200.1.1"));
  EXPECT_FALSE(bypass_matches("10.0.0.0/8", "11.0.0.1"));
  EXPECT_FALSE(bypass_matches("10.0.0.0/8", "10.example"));
  EXPECT_TRUE(bypass_matches("[fd00::1]", "fd00::1"));
  EXPECT_TRUE(bypass_matches("localhost", "LOCALHOST"));
  EXPECT_FALSE(bypass_matches("localhost", "localhost.evil"));
}

}  // namespace
}  // namespace lanrelay::proxy_protocol
