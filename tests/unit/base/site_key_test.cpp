#include "lanrelay/base/site_key.hpp"

#include <boost/json.hpp>
#include <boost/system/system_error.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace lanrelay {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using std::chrono::system_clock;

// ---- helpers ----

std::vector<std::byte> bytes_of(std::string_view text) {
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return {p, p + text.size()};
}

template <std::size_t N>
std::array<std::byte, N> from_hex(std::string_view hex) {
  std::array<std::byte, N> out{};
  for (std::size_t i = 0; i < N; ++i) {
    out[i] = static_cast<std::byte>(std::stoul(std::string(hex.substr(2 * i, 2)), nullptr, 16));
  }
  return out;
}

system_clock::time_point at(std::int64_t unix_seconds) {
  return system_clock::time_point{std::chrono::seconds{unix_seconds}};
}

class temp_dir {
 public:
  temp_dir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "site_key_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& file, std::string_view text, mode_t mode) {
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
  }
  ASSERT_EQ(::chmod(file.c_str(), mode), 0);
}

mode_t mode_of(const std::filesystem::path& file) {
  struct stat st {};
  EXPECT_EQ(::stat(file.c_str(), &st), 0);
  return st.st_mode & 07777;
}

// RFC 8032 section 7.1, TEST 1 and TEST 2. The PEM files are PKCS#8 wrappings of the secret keys.
constexpr std::string_view rfc1_pem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";
constexpr std::string_view rfc1_public =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr std::string_view rfc1_signature =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b";
constexpr std::string_view rfc2_public =
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
constexpr std::string_view rfc2_signature =
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d"
    "8c387b2eaeb4302aeeb00d291612bb0c00";

// `openssl genpkey -algorithm ed25519 -aes256 -pass pass:secret`
constexpr std::string_view encrypted_pem =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgo9WC+b80Q+gICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEENkGGMqDcujKMHcauh2XFTsEQH3F\n"
    "gxhAM8dMaB1gdARIqrp/ztwGQjNw+nwJBVlWDZsMACyb+V2TGzpLQczpTR6aZq7E\n"
    "ugpM2sa0/C46TXL2ICk=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";
// `openssl genpkey -algorithm x25519`: the right size, the wrong algorithm.
constexpr std::string_view x25519_pem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VuBCIEIGBMQ4uVEdAqKEKvnevRJPAl5CfTks52WRcdHN30HoZp\n"
    "-----END PRIVATE KEY-----\n";

site_key make_key() { return site_key::generate().value(); }

constexpr std::int64_t issued = 1'750'000'000;
constexpr std::int64_t expires = issued + 86'400;
const system_clock::time_point fixed_now = at(issued + 3'600);

catalog sample_catalog() {
  catalog c;
  c.relay_id = "relay-floor3.example";
  c.issued_at = at(issued);
  c.expires_at = at(expires);
  c.tls_certificates = {
      *parse_sha256_hex("5555555555555555555555555555555555555555555555555555555555555555")};
  c.entries = {
      {item_kind::installer, "agent-win64", "14.0.1234", 123'456'789,
       *parse_sha256_hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")},
      {item_kind::pattern, "lpt", "1667900", 40'000'000,
       *parse_sha256_hex("ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"),
       parse_sha256_hex("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")},
      {item_kind::file, "engine.zip", "v2", 0,
       *parse_sha256_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")},
  };
  return c;
}

std::string base64(std::span<const std::byte> data) {
  // An encoder of the test's own, so that the document format is not checked against itself.
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const auto v = (std::to_integer<unsigned>(data[i]) << 16) |
                   (std::to_integer<unsigned>(data[i + 1]) << 8) |
                   std::to_integer<unsigned>(data[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (data.size() - i == 1) {
    const auto v = std::to_integer<unsigned>(data[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (data.size() - i == 2) {
    const auto v =
        (std::to_integer<unsigned>(data[i]) << 16) | (std::to_integer<unsigned>(data[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// Builds the document the way the format description says, without sign_catalog's validation,
// so that verify_catalog can be shown signed catalogs that break the rules.
json::object unchecked_body(const catalog& c) {
  json::array entries;
  for (const auto& e : c.entries) {
    json::object entry{{"kind", to_string(e.kind)},
                       {"name", e.name},
                       {"version", e.version},
                       {"size", e.size},
                       {"sha256", to_hex(e.sha256)}};
    if (e.pieces) {
      entry["pieces"] = to_hex(*e.pieces);
    }
    entries.push_back(std::move(entry));
  }
  json::array tls;
  for (const auto& fingerprint : c.tls_certificates) {
    tls.push_back(json::value(to_hex(fingerprint)));
  }
  json::object body{
      {"format", 2},
      {"relay_id", c.relay_id},
      {"issued_at",
       std::chrono::floor<std::chrono::seconds>(c.issued_at.time_since_epoch()).count()},
      {"expires_at",
       std::chrono::floor<std::chrono::seconds>(c.expires_at.time_since_epoch()).count()},
      {"tls", std::move(tls)},
      {"entries", std::move(entries)}};
  if (!c.urls.empty()) {
    json::array urls;
    for (const auto& url : c.urls) {
      urls.push_back(json::value(url));
    }
    body["urls"] = std::move(urls);
  }
  return body;
}

std::string sign_unchecked(const catalog& c, const site_key& key) {
  const auto signature = key.sign(canonical_catalog_bytes(c));
  return json::serialize(json::object{{"catalog", unchecked_body(c)},
                                      {"signature", base64(signature)},
                                      {"key", key.public_key().to_string()}});
}

// Re-signs nothing: edits the parsed document and serialises it again.
template <typename Edit>
std::string edited(const std::string& document, Edit edit) {
  auto root = json::parse(document);
  edit(root.as_object());
  return json::serialize(root);
}

json::object& body_of(json::object& doc) { return doc["catalog"].as_object(); }
json::object& entry_of(json::object& doc, std::size_t i) {
  return body_of(doc)["entries"].as_array()[i].as_object();
}

// ---- error category ----

TEST(site_key_test, error_category_explains_every_reason) {
  EXPECT_STREQ(trust_category().name(), "lanrelay.trust");
  for (int v = static_cast<int>(trust_errc::malformed);
       v <= static_cast<int>(trust_errc::crypto_failure); ++v) {
    const boost::system::error_code ec = static_cast<trust_errc>(v);
    EXPECT_EQ(&ec.category(), &trust_category());
    EXPECT_FALSE(ec.message().starts_with("unknown trust error")) << v;
  }
  EXPECT_NE(make_error_code(trust_errc::insecure_key_file).message().find("chmod 600"),
            std::string::npos);
}

// ---- Ed25519 ----

TEST(site_key_test, signs_and_verifies) {
  const auto key = make_key();
  const auto message = bytes_of("pattern 1667900");
  const auto signature = key.sign(message);
  EXPECT_TRUE(verify(key.public_key(), message, signature));

  auto altered_message = message;
  altered_message.back() ^= std::byte{1};
  EXPECT_FALSE(verify(key.public_key(), altered_message, signature));

  auto altered_signature = signature;
  altered_signature[10] ^= std::byte{0x80};
  EXPECT_FALSE(verify(key.public_key(), message, altered_signature));

  EXPECT_FALSE(verify(key.public_key(), message, std::span(signature).first(63)));
  std::vector<std::byte> longer(signature.begin(), signature.end());
  longer.push_back(std::byte{0});
  EXPECT_FALSE(verify(key.public_key(), message, longer));
  EXPECT_FALSE(verify(key.public_key(), message, {}));

  EXPECT_FALSE(verify(make_key().public_key(), message, signature));
  EXPECT_FALSE(verify(public_key{}, message, signature));
}

TEST(site_key_test, signs_an_empty_message) {
  const auto key = make_key();
  const auto signature = key.sign({});
  EXPECT_TRUE(verify(key.public_key(), {}, signature));
}

TEST(site_key_test, generated_keys_differ) {
  EXPECT_NE(make_key().public_key(), make_key().public_key());
}

TEST(site_key_test, matches_rfc8032_vectors) {
  const temp_dir dir;
  const auto file = dir.path() / "rfc1.key";
  write_file(file, rfc1_pem, 0600);
  const auto key = site_key::load(file).value();
  EXPECT_EQ(key.public_key().bytes, from_hex<32>(rfc1_public));
  EXPECT_EQ(key.sign({}), from_hex<64>(rfc1_signature));
  EXPECT_TRUE(verify(key.public_key(), {}, from_hex<64>(rfc1_signature)));

  const std::array message{std::byte{0x72}};
  EXPECT_TRUE(verify(public_key{from_hex<32>(rfc2_public)}, message, from_hex<64>(rfc2_signature)));
  EXPECT_FALSE(verify(public_key{from_hex<32>(rfc2_public)}, {}, from_hex<64>(rfc2_signature)));
}

// ---- key files ----

TEST(site_key_test, save_and_load_round_trip) {
  const temp_dir dir;
  const auto file = dir.path() / std::string(site_key_file_name);
  const auto key = make_key();
  ASSERT_TRUE(key.save(file));
  EXPECT_EQ(mode_of(file), 0600U);

  const auto loaded = site_key::load(file);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->public_key(), key.public_key());
  const auto message = bytes_of("catalog");
  EXPECT_TRUE(verify(key.public_key(), message, loaded->sign(message)));

  // Only the key file is left: no temporary files.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(site_key_test, save_ignores_a_permissive_umask) {
  const temp_dir dir;
  const auto file = dir.path() / "site.key";
  const auto old_mask = ::umask(0);
  const auto saved = make_key().save(file);
  ::umask(old_mask);
  ASSERT_TRUE(saved);
  EXPECT_EQ(mode_of(file), 0600U);
}

TEST(site_key_test, save_refuses_to_replace_a_key_unless_asked) {
  const temp_dir dir;
  const auto file = dir.path() / "site.key";
  const auto first = make_key();
  ASSERT_TRUE(first.save(file));

  const auto second = make_key();
  const auto refused = second.save(file);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, boost::system::errc::file_exists);
  EXPECT_NE(refused.error().message.find(file.string()), std::string::npos);
  EXPECT_EQ(site_key::load(file).value().public_key(), first.public_key());

  ASSERT_TRUE(second.save(file, site_key::overwrite::yes));
  EXPECT_EQ(site_key::load(file).value().public_key(), second.public_key());
  EXPECT_EQ(mode_of(file), 0600U);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(site_key_test, save_reports_a_missing_directory) {
  const temp_dir dir;
  const auto file = dir.path() / "missing" / "site.key";
  const auto saved = make_key().save(file);
  ASSERT_FALSE(saved);
  EXPECT_EQ(saved.error().code, boost::system::errc::no_such_file_or_directory);
  EXPECT_NE(saved.error().message.find("missing"), std::string::npos);
}

TEST(site_key_test, load_refuses_a_key_readable_by_others) {
  const temp_dir dir;
  const auto file = dir.path() / "site.key";
  ASSERT_TRUE(make_key().save(file));
  for (const mode_t mode : {0640, 0604, 0660, 0620, 0602, 0610, 0601, 0644}) {
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
    const auto loaded = site_key::load(file);
    ASSERT_FALSE(loaded) << std::oct << mode;
    EXPECT_EQ(loaded.error().code, trust_errc::insecure_key_file);
    EXPECT_NE(loaded.error().message.find(file.string()), std::string::npos);
    EXPECT_NE(loaded.error().message.find("chmod 600"), std::string::npos);
  }
  for (const mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
    EXPECT_TRUE(site_key::load(file)) << std::oct << mode;
  }
}

TEST(site_key_test, load_failure_throws_with_the_message_from_value) {
  const temp_dir dir;
  const auto file = dir.path() / "site.key";
  ASSERT_TRUE(make_key().save(file));
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  try {
    (void)site_key::load(file).value();
    FAIL() << "value() did not throw";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), trust_errc::insecure_key_file);
    EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos);
  }
}

TEST(site_key_test, load_reports_a_missing_file_by_path) {
  const temp_dir dir;
  const auto file = dir.path() / "absent.key";
  const auto loaded = site_key::load(file);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, boost::system::errc::no_such_file_or_directory);
  EXPECT_NE(loaded.error().message.find(file.string()), std::string::npos);
}

TEST(site_key_test, load_refuses_files_without_an_ed25519_key) {
  const temp_dir dir;
  const std::pair<const char*, std::string_view> cases[] = {
      {"empty", ""},
      {"garbage", "not a key\n"},
      {"encrypted", encrypted_pem},
      {"x25519", x25519_pem},
      {"truncated", rfc1_pem.substr(0, 40)},
      {"public", "lanrelay-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"},
  };
  for (const auto& [name, text] : cases) {
    const auto file = dir.path() / name;
    write_file(file, text, 0600);
    const auto loaded = site_key::load(file);
    ASSERT_FALSE(loaded) << name;
    EXPECT_EQ(loaded.error().code, trust_errc::invalid_key_file) << name;
    EXPECT_NE(loaded.error().message.find(file.string()), std::string::npos) << name;
  }
  const auto big = dir.path() / "big";
  write_file(big, std::string(100'000, 'A'), 0600);
  EXPECT_EQ(site_key::load(big).error().code, trust_errc::invalid_key_file);

  const auto sub = dir.path() / "subdir";
  std::filesystem::create_directory(sub);
  ASSERT_EQ(::chmod(sub.c_str(), 0700), 0);
  EXPECT_EQ(site_key::load(sub).error().code, trust_errc::invalid_key_file);
}

// ---- public key text ----

TEST(site_key_test, public_key_text_round_trips) {
  for (int i = 0; i < 20; ++i) {
    const auto key = make_key().public_key();
    const auto text = key.to_string();
    EXPECT_TRUE(text.starts_with(public_key_prefix));
    EXPECT_EQ(text.size(), public_key_prefix.size() + 44);
    const auto parsed = parse_public_key(text);
    ASSERT_TRUE(parsed) << text;
    EXPECT_EQ(*parsed, key);
  }
  const public_key rfc{from_hex<32>(rfc1_public)};
  EXPECT_EQ(rfc.to_string(), "lanrelay-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
}

TEST(site_key_test, public_key_text_rejects_malformed_text) {
  const std::string good = "lanrelay-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
  ASSERT_TRUE(parse_public_key(good));
  const std::string body = good.substr(public_key_prefix.size());
  const std::string cases[] = {
      "",
      "lanrelay-ed25519:",
      body,                         // no prefix
      "LANRELAY-ED25519:" + body,   // prefix is case sensitive
      "lanrelay-ed448:" + body,     // other algorithm
      "lanrelay-ed25519: " + body,  // whitespace
      " " + good,
      good + "\n",
      good + " ",
      good.substr(0, good.size() - 1),                                  // padding missing
      good + "=",                                                       // extra padding
      good.substr(0, good.size() - 2) + "==",                           // 31 bytes
      good + "AAAA",                                                    // 35 bytes
      "lanrelay-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURp=",  // non-zero pad bits
      "lanrelay-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHU=o=",  // '=' inside
      "lanrelay-ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=",  // base64url alphabet
      "lanrelay-ed25519:11qYAYKxCrfVS*7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
      "lanrelay-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcH\nURo=",
      std::string("lanrelay-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR\0=", 61),
  };
  for (const auto& text : cases) {
    const auto parsed = parse_public_key(text);
    ASSERT_FALSE(parsed) << '"' << text << '"';
    EXPECT_EQ(parsed.error(), trust_errc::malformed_key) << '"' << text << '"';
  }
}

// ---- catalog ----

TEST(catalog_test, signed_catalog_verifies_and_round_trips) {
  const auto key = make_key();
  const auto c = sample_catalog();
  const auto document = sign_catalog(c, key);
  const auto verified = verify_catalog(document, key.public_key(), fixed_now);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_EQ(*verified, c);
}

TEST(catalog_test, document_has_the_documented_shape) {
  const auto key = make_key();
  const auto document = sign_catalog(sample_catalog(), key);
  EXPECT_EQ(document.find('\n'), std::string::npos);
  const auto root = json::parse(document).as_object();
  ASSERT_EQ(root.size(), 3U);
  EXPECT_EQ(root.at("key").as_string(), key.public_key().to_string());
  EXPECT_EQ(root.at("signature").as_string().size(), 88U);
  EXPECT_EQ(root.at("signature").as_string(),
            base64(key.sign(canonical_catalog_bytes(sample_catalog()))));
  const auto& body = root.at("catalog").as_object();
  EXPECT_EQ(body.at("format").as_int64(), 2);
  ASSERT_EQ(body.at("tls").as_array().size(), 1U);
  EXPECT_EQ(body.at("tls").as_array()[0].as_string(), std::string(64, '5'));
  EXPECT_FALSE(body.at("entries").as_array().at(0).as_object().contains("pieces"));
  EXPECT_EQ(body.at("entries").as_array().at(1).as_object().at("pieces").as_string(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_EQ(body.at("relay_id").as_string(), "relay-floor3.example");
  EXPECT_EQ(body.at("issued_at").as_int64(), issued);
  EXPECT_EQ(body.at("expires_at").as_int64(), expires);
  const auto& first = body.at("entries").as_array().at(0).as_object();
  EXPECT_EQ(first.at("kind").as_string(), "installer");
  EXPECT_EQ(first.at("name").as_string(), "agent-win64");
  EXPECT_EQ(first.at("version").as_string(), "14.0.1234");
  EXPECT_EQ(first.at("size").as_int64(), 123'456'789);
  EXPECT_EQ(first.at("sha256").as_string(),
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  // The unchecked builder used by other tests writes the same document.
  EXPECT_EQ(sign_unchecked(sample_catalog(), key), document);
}

TEST(catalog_test, canonical_bytes_follow_the_documented_encoding) {
  catalog c;
  c.relay_id = "r1";
  c.issued_at = at(0x0102);
  c.expires_at = at(0x0103);
  sha256_digest digest{};
  digest.fill(std::byte{0xab});
  sha256_digest pieces{};
  pieces.fill(std::byte{0xcd});
  sha256_digest fingerprint{};
  fingerprint.fill(std::byte{0xef});
  c.tls_certificates = {fingerprint};
  c.entries = {{item_kind::pattern, "lpt", "1667900", 0x0a0b, digest, std::nullopt},
               {item_kind::file, "f", "", 1, digest, pieces}};

  std::vector<std::byte> expected = bytes_of(std::string_view("lanrelay-catalog-v2\0", 20));
  const auto append = [&](std::initializer_list<int> values) {
    for (const int v : values) {
      expected.push_back(static_cast<std::byte>(v));
    }
  };
  append({0, 0, 0, 2, 'r', '1'});
  append({0, 0, 0, 0, 0, 0, 0x01, 0x02});
  append({0, 0, 0, 0, 0, 0, 0x01, 0x03});
  append({0, 0, 0, 1});
  expected.insert(expected.end(), fingerprint.begin(), fingerprint.end());
  append({0, 0, 0, 2});
  append({2});
  append({0, 0, 0, 3, 'l', 'p', 't'});
  append({0, 0, 0, 7, '1', '6', '6', '7', '9', '0', '0'});
  append({0, 0, 0, 0, 0, 0, 0x0a, 0x0b});
  expected.insert(expected.end(), digest.begin(), digest.end());
  append({0});
  append({3});
  append({0, 0, 0, 1, 'f'});
  append({0, 0, 0, 0});
  append({0, 0, 0, 0, 0, 0, 0, 1});
  expected.insert(expected.end(), digest.begin(), digest.end());
  append({1});
  expected.insert(expected.end(), pieces.begin(), pieces.end());
  EXPECT_EQ(canonical_catalog_bytes(c), expected);
}

// Without URLs the bytes end after the entries (the golden bytes above, as signed before `urls`
// existed); with them a count and the strings follow.
TEST(catalog_test, item_urls_are_appended_to_the_canonical_bytes_only_when_present) {
  auto c = sample_catalog();
  const auto without = canonical_catalog_bytes(c);
  c.urls = {"http://a.example/x", "https://[fe80::1]:4127/cache/file/f/1"};
  auto expected = without;
  const auto append_string = [&](std::string_view text) {
    const auto n = static_cast<std::uint32_t>(text.size());
    for (const int shift : {24, 16, 8, 0}) {
      expected.push_back(static_cast<std::byte>((n >> shift) & 0xff));
    }
    const auto b = bytes_of(text);
    expected.insert(expected.end(), b.begin(), b.end());
  };
  for (const int v : {0, 0, 0, 2}) {
    expected.push_back(static_cast<std::byte>(v));
  }
  append_string(c.urls[0]);
  append_string(c.urls[1]);
  EXPECT_EQ(canonical_catalog_bytes(c), expected);
  c.urls.clear();
  EXPECT_EQ(canonical_catalog_bytes(c), without);
}

TEST(catalog_test, item_urls_are_signed_and_round_trip) {
  const auto key = make_key();
  auto c = sample_catalog();
  EXPECT_FALSE(json::parse(sign_catalog(c, key)).at("catalog").as_object().contains("urls"));
  c.urls = {"http://relay-b.example:4127/cache/installer/agent-win64/14.0.1234",
            "http://10.0.0.9/cache/file/engine.zip/v2"};
  const auto document = sign_catalog(c, key);
  const auto verified = verify_catalog(document, key.public_key(), fixed_now);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_EQ(verified->urls, c.urls);
  EXPECT_EQ(sign_unchecked(c, key), document);

  using edit = std::function<void(json::object&)>;
  const std::pair<const char*, edit> cases[] = {
      {"url changed",
       [](json::object& d) { body_of(d)["urls"].as_array()[1] = "http://10.0.0.10/cache/file/engine.zip/v2"; }},
      {"url added",
       [](json::object& d) { body_of(d)["urls"].as_array().push_back("http://evil.example/"); }},
      {"url removed", [](json::object& d) { body_of(d)["urls"].as_array().pop_back(); }},
      {"urls reordered",
       [](json::object& d) {
         auto& urls = body_of(d)["urls"].as_array();
         std::swap(urls[0], urls[1]);
       }},
      {"urls removed", [](json::object& d) { body_of(d).erase("urls"); }},
  };
  for (const auto& [name, change] : cases) {
    const auto tampered = verify_catalog(edited(document, change), key.public_key(), fixed_now);
    ASSERT_FALSE(tampered) << name;
    EXPECT_EQ(tampered.error(), trust_errc::bad_signature) << name;
  }
  // URLs added to a catalog signed without them.
  const auto added = edited(sign_catalog(sample_catalog(), key), [](json::object& d) {
    body_of(d)["urls"] = json::array{"http://evil.example/cache/file/engine.zip/v2"};
  });
  EXPECT_EQ(verify_catalog(added, key.public_key(), fixed_now).error(), trust_errc::bad_signature);
  // Not a list of strings.
  const auto mistyped = edited(document, [](json::object& d) { body_of(d)["urls"] = "http://a/"; });
  EXPECT_EQ(verify_catalog(mistyped, key.public_key(), fixed_now).error(), trust_errc::malformed);
  const auto number = edited(document, [](json::object& d) { body_of(d)["urls"].as_array()[0] = 5; });
  EXPECT_EQ(verify_catalog(number, key.public_key(), fixed_now).error(), trust_errc::malformed);
}

TEST(catalog_test, item_urls_must_be_plain_http_urls) {
  const auto key = make_key();
  for (const std::string& bad :
       {std::string("/cache/file/f/1"), std::string("ftp://host/x"), std::string("HTTP://host/x"),
        std::string("http://user:pw@host/x"), std::string("http://host/x#frag"),
        std::string("http:///x"), std::string("http://host/") + std::string(max_catalog_url_length, 'a'),
        std::string("not a url")}) {
    auto c = sample_catalog();
    c.urls = {bad};
    EXPECT_FALSE(is_valid_catalog_url(bad)) << bad;
    EXPECT_EQ(validate_catalog(c).error(), trust_errc::invalid_content) << bad;
    const auto verified = verify_catalog(sign_unchecked(c, key), key.public_key(), fixed_now);
    ASSERT_FALSE(verified) << bad;
    EXPECT_EQ(verified.error(), trust_errc::invalid_content) << bad;
  }
  auto c = sample_catalog();
  c.urls = {"http://host/x", "http://host/x"};
  EXPECT_EQ(validate_catalog(c).error(), trust_errc::invalid_content);
  c.urls = {"http://host/x?copy=1", "https://[2001:db8::1]:8443/x"};
  EXPECT_TRUE(validate_catalog(c));
}

TEST(catalog_test, times_are_signed_as_whole_seconds) {
  const auto key = make_key();
  auto c = sample_catalog();
  c.issued_at += 999ms;
  c.expires_at += 1ms;
  const auto verified = verify_catalog(sign_catalog(c, key), key.public_key(), fixed_now);
  ASSERT_TRUE(verified);
  EXPECT_EQ(verified->issued_at, at(issued));
  EXPECT_EQ(verified->expires_at, at(expires));
}

TEST(catalog_test, empty_catalog_verifies) {
  const auto key = make_key();
  auto c = sample_catalog();
  c.entries.clear();
  const auto verified = verify_catalog(sign_catalog(c, key), key.public_key(), fixed_now);
  ASSERT_TRUE(verified);
  EXPECT_TRUE(verified->entries.empty());
}

TEST(catalog_test, tampered_field_fails_the_signature) {
  const auto key = make_key();
  const auto document = sign_catalog(sample_catalog(), key);
  using edit = std::function<void(json::object&)>;
  const std::pair<const char*, edit> cases[] = {
      {"relay_id", [](json::object& d) { body_of(d)["relay_id"] = "relay-floor4.example"; }},
      {"issued_at", [](json::object& d) { body_of(d)["issued_at"] = issued - 1; }},
      {"expires_at", [](json::object& d) { body_of(d)["expires_at"] = expires + 86'400; }},
      {"kind", [](json::object& d) { entry_of(d, 2)["kind"] = "installer"; }},
      {"kind swap", [](json::object& d) { entry_of(d, 0)["kind"] = "file"; }},
      {"name", [](json::object& d) { entry_of(d, 0)["name"] = "agent-win32"; }},
      {"version", [](json::object& d) { entry_of(d, 0)["version"] = "14.0.1235"; }},
      {"size", [](json::object& d) { entry_of(d, 1)["size"] = 40'000'001; }},
      {"size zero", [](json::object& d) { entry_of(d, 0)["size"] = 0; }},
      {"sha256",
       [](json::object& d) {
         entry_of(d, 2)["sha256"] =
             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b856";
       }},
      {"entry removed", [](json::object& d) { body_of(d)["entries"].as_array().pop_back(); }},
      {"entry added",
       [](json::object& d) {
         auto& entries = body_of(d)["entries"].as_array();
         json::object extra = entries[0].as_object();
         extra["name"] = "evil";
         entries.push_back(std::move(extra));
       }},
      {"entries reordered",
       [](json::object& d) {
         auto& entries = body_of(d)["entries"].as_array();
         std::swap(entries[0], entries[1]);
       }},
      {"entries emptied", [](json::object& d) { body_of(d)["entries"].as_array().clear(); }},
      {"pieces", [](json::object& d) { entry_of(d, 1)["pieces"] = std::string(64, 'a'); }},
      {"pieces removed", [](json::object& d) { entry_of(d, 1).erase("pieces"); }},
      {"pieces added", [](json::object& d) { entry_of(d, 0)["pieces"] = std::string(64, 'a'); }},
      {"tls", [](json::object& d) { body_of(d)["tls"] = json::array{std::string(64, '6')}; }},
      {"tls removed", [](json::object& d) { body_of(d)["tls"] = json::array{}; }},
      {"signature",
       [](json::object& d) {
         auto sig = std::string(d["signature"].as_string());
         sig[5] = sig[5] == 'A' ? 'B' : 'A';
         d["signature"] = sig;
       }},
  };
  for (const auto& [name, change] : cases) {
    const auto tampered = edited(document, change);
    ASSERT_NE(tampered, document) << name;
    const auto verified = verify_catalog(tampered, key.public_key(), fixed_now);
    ASSERT_FALSE(verified) << name;
    EXPECT_EQ(verified.error(), trust_errc::bad_signature) << name;
  }
}

TEST(catalog_test, json_spelling_does_not_matter_only_content) {
  const auto key = make_key();
  const auto c = sample_catalog();
  const auto document = sign_catalog(c, key);
  // Other member order, upper-case hex and whitespace carry the same catalog.
  auto root = json::parse(document).as_object();
  auto& entry = root["catalog"].as_object()["entries"].as_array()[0].as_object();
  std::string upper(entry["sha256"].as_string());
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](char ch) { return ch >= 'a' && ch <= 'f' ? static_cast<char>(ch - 32) : ch; });
  entry["sha256"] = upper;
  const json::object reordered{
      {"key", root["key"]}, {"signature", root["signature"]}, {"catalog", root["catalog"]}};
  const auto respelled = "  " + json::serialize(reordered) + "\n";
  const auto verified = verify_catalog(respelled, key.public_key(), fixed_now);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_EQ(*verified, c);
}

TEST(catalog_test, any_changed_byte_fails_or_yields_the_same_catalog) {
  const auto key = make_key();
  const auto c = sample_catalog();
  const auto document = sign_catalog(c, key);
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < document.size(); ++i) {
    for (const char replacement :
         {'0', '1', '9', 'a', 'A', 'z', '"', ',', '{', ' ', '\0', '\xff'}) {
      if (document[i] == replacement) {
        continue;
      }
      auto changed = document;
      changed[i] = replacement;
      const auto verified = verify_catalog(changed, key.public_key(), fixed_now);
      if (verified) {
        ++accepted;
        EXPECT_EQ(*verified, c) << "offset " << i << " -> " << replacement;
      }
    }
  }
  // Only hex case changes in digests (a <-> A) keep the same meaning.
  EXPECT_LE(accepted, 64U * 3U);
}

TEST(catalog_test, wrong_key_fails) {
  const auto relay = make_key();
  const auto other = make_key();
  const auto document = sign_catalog(sample_catalog(), relay);

  const auto verified = verify_catalog(document, other.public_key(), fixed_now);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error(), trust_errc::wrong_key);

  // Claiming the pinned key does not help a document signed by another key.
  const auto relabelled =
      edited(document, [&](json::object& d) { d["key"] = other.public_key().to_string(); });
  const auto forged = verify_catalog(relabelled, other.public_key(), fixed_now);
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error(), trust_errc::bad_signature);
}

TEST(catalog_test, expiry_and_issue_time_are_enforced) {
  const auto key = make_key();
  const auto document = sign_catalog(sample_catalog(), key);
  const auto pinned = key.public_key();

  EXPECT_TRUE(verify_catalog(document, pinned, at(issued)));
  EXPECT_TRUE(verify_catalog(document, pinned, at(expires) - 1ns));
  EXPECT_EQ(verify_catalog(document, pinned, at(expires)).error(), trust_errc::expired);
  EXPECT_EQ(verify_catalog(document, pinned, at(expires + 365 * 86'400)).error(),
            trust_errc::expired);

  EXPECT_TRUE(verify_catalog(document, pinned, at(issued) - catalog_clock_skew));
  EXPECT_EQ(verify_catalog(document, pinned, at(issued) - catalog_clock_skew - 1ns).error(),
            trust_errc::not_yet_valid);
  EXPECT_EQ(verify_catalog(document, pinned, at(0)).error(), trust_errc::not_yet_valid);
}

TEST(catalog_test, replayed_valid_document_still_verifies) {
  const auto key = make_key();
  const auto c = sample_catalog();
  const auto document = sign_catalog(c, key);
  for (const auto now : {fixed_now, fixed_now + 1h, at(expires) - 1s}) {
    const auto verified = verify_catalog(document, key.public_key(), now);
    ASSERT_TRUE(verified);
    EXPECT_EQ(*verified, c);
  }
}

TEST(catalog_test, malformed_documents_are_rejected) {
  const auto key = make_key();
  const auto document = sign_catalog(sample_catalog(), key);
  using edit = std::function<void(json::object&)>;
  const std::pair<const char*, edit> edits[] = {
      {"no catalog", [](json::object& d) { d.erase("catalog"); }},
      {"no signature", [](json::object& d) { d.erase("signature"); }},
      {"no key", [](json::object& d) { d.erase("key"); }},
      {"extra member", [](json::object& d) { d["note"] = "hi"; }},
      {"catalog not object", [](json::object& d) { d["catalog"] = json::array{}; }},
      {"signature not string", [](json::object& d) { d["signature"] = 5; }},
      {"signature short", [](json::object& d) { d["signature"] = "AAAA"; }},
      {"signature not base64",
       [](json::object& d) { d["signature"] = std::string(86, '*') + "=="; }},
      {"key malformed", [](json::object& d) { d["key"] = "lanrelay-ed25519:AAAA"; }},
      {"key not string", [](json::object& d) { d["key"] = nullptr; }},
      {"format 1", [](json::object& d) { body_of(d)["format"] = 1; }},
      {"format 3", [](json::object& d) { body_of(d)["format"] = 3; }},
      {"format text", [](json::object& d) { body_of(d)["format"] = "2"; }},
      {"no tls", [](json::object& d) { body_of(d).erase("tls"); }},
      {"tls object", [](json::object& d) { body_of(d)["tls"] = json::object{}; }},
      {"tls entry number", [](json::object& d) { body_of(d)["tls"] = json::array{1}; }},
      {"tls entry short", [](json::object& d) { body_of(d)["tls"] = json::array{"0011"}; }},
      {"pieces number", [](json::object& d) { entry_of(d, 0)["pieces"] = 1; }},
      {"pieces short", [](json::object& d) { entry_of(d, 0)["pieces"] = "00112233"; }},
      {"no format", [](json::object& d) { body_of(d).erase("format"); }},
      {"no relay_id", [](json::object& d) { body_of(d).erase("relay_id"); }},
      {"relay_id number", [](json::object& d) { body_of(d)["relay_id"] = 7; }},
      {"no entries", [](json::object& d) { body_of(d).erase("entries"); }},
      {"entries object", [](json::object& d) { body_of(d)["entries"] = json::object{}; }},
      {"extra catalog member", [](json::object& d) { body_of(d)["comment"] = "x"; }},
      {"issued_at negative", [](json::object& d) { body_of(d)["issued_at"] = -1; }},
      {"issued_at fraction", [](json::object& d) { body_of(d)["issued_at"] = 1.5; }},
      {"issued_at text", [](json::object& d) { body_of(d)["issued_at"] = "1750000000"; }},
      {"expires_at huge", [](json::object& d) { body_of(d)["expires_at"] = max_catalog_time + 1; }},
      {"expires_at uint64",
       [](json::object& d) { body_of(d)["expires_at"] = std::uint64_t{1} << 63; }},
      {"entry not object", [](json::object& d) { body_of(d)["entries"].as_array()[0] = 1; }},
      {"entry extra member", [](json::object& d) { entry_of(d, 0)["url"] = "http://x/"; }},
      {"entry no sha256", [](json::object& d) { entry_of(d, 0).erase("sha256"); }},
      {"entry no size", [](json::object& d) { entry_of(d, 0).erase("size"); }},
      {"kind unknown", [](json::object& d) { entry_of(d, 0)["kind"] = "engine"; }},
      {"kind number", [](json::object& d) { entry_of(d, 0)["kind"] = 1; }},
      {"name number", [](json::object& d) { entry_of(d, 0)["name"] = 1; }},
      {"version null", [](json::object& d) { entry_of(d, 0)["version"] = nullptr; }},
      {"size negative", [](json::object& d) { entry_of(d, 0)["size"] = -1; }},
      {"size float", [](json::object& d) { entry_of(d, 0)["size"] = 1e3; }},
      {"size text", [](json::object& d) { entry_of(d, 0)["size"] = "10"; }},
      {"sha256 short", [](json::object& d) { entry_of(d, 0)["sha256"] = "00112233"; }},
      {"sha256 not hex", [](json::object& d) { entry_of(d, 0)["sha256"] = std::string(64, 'g'); }},
  };
  for (const auto& [name, change] : edits) {
    const auto verified = verify_catalog(edited(document, change), key.public_key(), fixed_now);
    ASSERT_FALSE(verified) << name;
    EXPECT_EQ(verified.error(), trust_errc::malformed) << name;
  }

  const std::string texts[] = {
      "",
      "null",
      "[]",
      "\"catalog\"",
      "{",
      document + "x",
      document + document,
      "// comment\n" + document,
      document.substr(0, document.size() - 1) + ",}",
  };
  for (const auto& text : texts) {
    const auto verified = verify_catalog(text, key.public_key(), fixed_now);
    ASSERT_FALSE(verified) << text;
    EXPECT_EQ(verified.error(), trust_errc::malformed) << text;
  }
}

TEST(catalog_test, oversized_documents_are_rejected_before_parsing) {
  const auto key = make_key();
  const auto document = sign_catalog(sample_catalog(), key);
  const auto padded = document + std::string(max_catalog_document_size, ' ');
  EXPECT_EQ(verify_catalog(padded, key.public_key(), fixed_now).error(), trust_errc::too_large);

  const auto many = edited(document, [](json::object& d) {
    auto& entries = body_of(d)["entries"].as_array();
    entries.clear();
    entries.resize(max_catalog_entries + 1);
  });
  EXPECT_EQ(verify_catalog(many, key.public_key(), fixed_now).error(), trust_errc::too_large);

  auto c = sample_catalog();
  c.tls_certificates.resize(max_catalog_tls_fingerprints + 1);
  for (std::size_t i = 0; i < c.tls_certificates.size(); ++i) {
    c.tls_certificates[i].fill(static_cast<std::byte>(i));
  }
  EXPECT_EQ(validate_catalog(c).error(), trust_errc::too_large);
  EXPECT_EQ(verify_catalog(sign_unchecked(c, key), key.public_key(), fixed_now).error(),
            trust_errc::too_large);
}

TEST(catalog_test, signed_catalog_that_breaks_the_rules_is_rejected) {
  const auto key = make_key();
  using change_fn = std::function<void(catalog&)>;
  const std::pair<const char*, change_fn> cases[] = {
      {"name with slash", [](catalog& c) { c.entries[0].name = "../etc/passwd"; }},
      {"name leading dot", [](catalog& c) { c.entries[0].name = ".hidden"; }},
      {"empty name", [](catalog& c) { c.entries[0].name.clear(); }},
      {"installer version", [](catalog& c) { c.entries[0].version = "fourteen"; }},
      {"pattern display form", [](catalog& c) { c.entries[1].version = "16.679.00"; }},
      {"file version", [](catalog& c) { c.entries[2].version = "v 2"; }},
      {"duplicate entry", [](catalog& c) { c.entries.push_back(c.entries[0]); }},
      {"empty relay_id", [](catalog& c) { c.relay_id.clear(); }},
      {"relay_id control", [](catalog& c) { c.relay_id = "relay\n1"; }},
      {"relay_id too long",
       [](catalog& c) { c.relay_id = std::string(max_relay_id_length + 1, 'r'); }},
      {"expires before issued", [](catalog& c) { c.expires_at = c.issued_at - 1s; }},
      {"expires at issued", [](catalog& c) { c.expires_at = c.issued_at; }},
      {"duplicate TLS fingerprint",
       [](catalog& c) { c.tls_certificates.push_back(c.tls_certificates[0]); }},
  };
  for (const auto& [name, change] : cases) {
    auto c = sample_catalog();
    change(c);
    EXPECT_EQ(validate_catalog(c).error(), trust_errc::invalid_content) << name;
    EXPECT_THROW((void)sign_catalog(c, key), boost::system::system_error) << name;
    const auto verified = verify_catalog(sign_unchecked(c, key), key.public_key(), fixed_now);
    ASSERT_FALSE(verified) << name;
    EXPECT_EQ(verified.error(), trust_errc::invalid_content) << name;
  }
  // Same name and version under different kinds are different items.
  auto c = sample_catalog();
  c.entries.push_back({item_kind::file, "agent-win64", "14.0.1234", 1, {}});
  EXPECT_TRUE(validate_catalog(c));
}

TEST(catalog_test, truncated_documents_never_verify) {
  const auto key = make_key();
  const auto document = sign_catalog(sample_catalog(), key);
  for (std::size_t n = 0; n < document.size(); ++n) {
    EXPECT_FALSE(verify_catalog(std::string_view(document).substr(0, n), key.public_key(), fixed_now))
        << n;
  }
}

TEST(catalog_test, random_damage_never_crashes_and_never_changes_the_catalog) {
  const auto key = make_key();
  const auto c = sample_catalog();
  const auto document = sign_catalog(c, key);
  std::mt19937_64 rng(20240611);
  for (int round = 0; round < 3000; ++round) {
    auto damaged = document;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !damaged.empty(); ++e) {
      const auto pos = rng() % damaged.size();
      switch (rng() % 4) {
        case 0:
          damaged[pos] = static_cast<char>(rng());
          break;
        case 1:
          damaged.erase(pos, 1 + rng() % 8);
          break;
        case 2:
          damaged.insert(pos, 1, static_cast<char>(rng()));
          break;
        default:
          damaged.resize(pos);
          break;
      }
    }
    const auto verified = verify_catalog(damaged, key.public_key(), fixed_now);
    if (verified) {
      EXPECT_EQ(*verified, c) << damaged;
    }
  }
}

TEST(catalog_test, find_entry_looks_up_by_kind_name_and_canonical_version) {
  const auto c = sample_catalog();
  const auto installer = find_entry(c, item_kind::installer, "agent-win64", "14.0.1234");
  ASSERT_TRUE(installer);
  EXPECT_EQ(installer->size, 123'456'789U);

  const auto pattern = find_entry(c, item_kind::pattern, "lpt", "16.679.00");
  ASSERT_TRUE(pattern);
  EXPECT_EQ(pattern->version, "1667900");
  EXPECT_TRUE(find_entry(c, item_kind::pattern, "lpt", "1667900"));

  EXPECT_FALSE(find_entry(c, item_kind::file, "agent-win64", "14.0.1234"));
  EXPECT_FALSE(find_entry(c, item_kind::installer, "agent-win32", "14.0.1234"));
  EXPECT_FALSE(find_entry(c, item_kind::installer, "agent-win64", "14.0.1235"));
  EXPECT_FALSE(find_entry(c, item_kind::installer, "agent-win64", "not a version"));
  EXPECT_FALSE(find_entry(c, item_kind::pattern, "lpt", ""));
  EXPECT_FALSE(find_entry(catalog{}, item_kind::file, "engine.zip", "v2"));
}

}  // namespace
}  // namespace lanrelay
