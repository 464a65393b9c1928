#pragma once

// The site key and the catalogs it signs.
//
// The relay holds an Ed25519 private key (the site key). It signs its catalog: the list of items
// it serves with their size and SHA-256. Agents pin the public key in their configuration; a
// catalog that verifies against the pinned key is a trusted source of digests, so an agent may
// then download the bytes from any unsigned peer and keep them only when size and SHA-256 match.
//
// What the signature covers: `canonical_catalog_bytes`, a deterministic binary encoding of the
// decoded catalog (below), not the bytes of the JSON document. The verifier decodes the JSON into
// a `catalog`, re-encodes it and verifies the signature over that encoding, so what it returns is
// exactly what was signed, whatever the JSON spelling (member order, hex case of digests). The
// document is strict: an unknown, missing or mistyped member makes it malformed.
//
// Document (one line, no insignificant whitespace when produced by sign_catalog):
//   {"catalog": {"format": 2, "relay_id": "...", "issued_at": <unix s>, "expires_at": <unix s>,
//                "tls": ["<64 hex>", ...],
//                "entries": [{"kind": "installer", "name": "...", "version": "...",
//                             "size": <bytes>, "sha256": "<64 hex>", "pieces": "<64 hex>"}, ...],
//                "urls": ["http://...", ...]},
//    "signature": "<base64 of 64 bytes>", "key": "lanrelay-ed25519:<base64 of 32 bytes>"}
// `tls` (always present, possibly empty) lists the SHA-256 fingerprints of the DER certificates
// the relay presents on HTTPS, so that an agent pinned to the site key can pin the relay's TLS
// certificate without a PKI. `pieces` (optional per entry) is the SHA-256 of the item's piece
// list (piece_list.hpp), so that pieces served by untrusted holders can be checked one by one.
// `urls` (optional, omitted by sign_catalog when empty) lists exact item URLs on hosts other than
// the relay's own addresses that serve its items: an agent uses an offer whose URL names another
// host than the offer's sender only when a catalog it verified lists that URL, byte for byte
// (agent/offer_selection.hpp; docs/security.md says why exact URLs and not prefixes).
// Format 1 (no `tls`, no `pieces`, context "lanrelay-catalog-v1") is no longer accepted: a relay
// and its agents are upgraded together, and an agent that refuses a catalog falls back to the
// upstream.
//
// Canonical encoding (integers big-endian, strings as u32 length then bytes):
//   "lanrelay-catalog-v2" 0x00                     domain separation and format 2
//   string relay_id
//   i64 issued_at, i64 expires_at                  seconds since the Unix epoch
//   u32 number of TLS fingerprints, then 32 bytes each, in document order
//   u32 number of entries, then per entry, in document order:
//     u8 kind (1 installer, 2 pattern, 3 file), string name, string version, u64 size,
//     32 bytes SHA-256, u8 0 (no piece list) or 1 followed by the 32-byte piece list digest
//   only when `urls` is not empty: u32 number of URLs, then each as a string, in document order
//     (without URLs the bytes end after the entries, exactly as before `urls` existed, so
//     catalogs without them keep their bytes and signatures; the entry count says where the
//     entries end, so both forms decode one way only)
//
// Thread safety: free functions are pure and safe from any thread. A `site_key` may sign from
// several threads at once (each call uses its own OpenSSL context); moving or destroying it
// needs exclusive access.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/sha256.hpp"
#include "lanrelay/base/version.hpp"

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lanrelay {

// Why a key or a catalog was refused. Values are stable so that callers can count by reason.
enum class trust_errc {
  malformed = 1,      // not a catalog document: bad JSON, a member missing, unknown or mistyped
  too_large,          // document over max_catalog_document_size, or over max_catalog_entries entries
  wrong_key,          // signed with a key other than the pinned one
  bad_signature,      // the signature does not match the catalog: altered or forged
  invalid_content,    // signed, but breaks the catalog rules (entry name, version, duplicate, ...)
  expired,            // now is at or past expires_at
  not_yet_valid,      // issued_at is later than now by more than catalog_clock_skew
  malformed_key,      // public key text is not "lanrelay-ed25519:" + base64 of 32 bytes
  invalid_key_file,   // private key file holds no unencrypted Ed25519 key
  insecure_key_file,  // private key file is accessible by group or others
  crypto_failure,     // OpenSSL failed (out of memory, broken installation)
};

const boost::system::error_category& trust_category() noexcept;

inline boost::system::error_code make_error_code(trust_errc e) noexcept {
  return {static_cast<int>(e), trust_category()};
}

inline constexpr std::string_view public_key_prefix = "lanrelay-ed25519:";
// The file name of the site key in the relay's state directory.
inline constexpr std::string_view site_key_file_name = "site.key";

inline constexpr std::size_t max_catalog_document_size = std::size_t{16} << 20;
inline constexpr std::size_t max_catalog_entries = 100'000;
inline constexpr std::size_t max_relay_id_length = 255;
// A relay presents at most this many certificates at once (the current one, and the next during
// a rotation).
inline constexpr std::size_t max_catalog_tls_fingerprints = 4;
// Item URLs on other hosts a catalog may name, and the length of each.
inline constexpr std::size_t max_catalog_urls = 100'000;
inline constexpr std::size_t max_catalog_url_length = 2048;
// issued_at may be this far ahead of the verifier's clock. expires_at gets no tolerance.
inline constexpr std::chrono::seconds catalog_clock_skew{300};
// Catalog times are whole seconds in [0, max_catalog_time]; the bound keeps every value
// representable in system_clock::time_point (year 2242).
inline constexpr std::int64_t max_catalog_time = (std::int64_t{1} << 33) - 1;

using ed25519_signature = std::array<std::byte, 64>;

// An Ed25519 public key: what agents pin.
struct public_key {
  std::array<std::byte, 32> bytes{};

  // "lanrelay-ed25519:" + standard base64 (with padding) of the 32 bytes.
  std::string to_string() const;
  bool operator==(const public_key&) const = default;
};

// Accepts exactly the text `public_key::to_string` produces: no surrounding whitespace, canonical
// base64. Else trust_errc::malformed_key.
result<public_key> parse_public_key(std::string_view text);

// Checks `signature` (any length; only 64 bytes can match) over `message` with `key`.
bool verify(const public_key& key, std::span<const std::byte> message,
            std::span<const std::byte> signature) noexcept;

// A failure to load or save the private key file, with a message for the administrator that
// names the file and says what to do.
struct key_file_error {
  boost::system::error_code code;  // trust_errc, or the system error of the failed call
  std::string message;
};

// Lets key_file_result<T>::value() throw boost::system::system_error carrying the message.
[[noreturn]] void throw_exception_from_error(const key_file_error& e,
                                             const boost::source_location& loc);

template <typename T>
using key_file_result = boost::system::result<T, key_file_error>;

// The relay's private key. Move-only; a moved-from site_key must not be used.
class site_key {
 public:
  enum class overwrite { no, yes };

  // A new random key. Fails only when OpenSSL does (crypto_failure).
  static result<site_key> generate();

  // Reads a PEM PKCS#8 Ed25519 private key (as written by `save`, or by
  // `openssl genpkey -algorithm ed25519`). Refuses a file that is not a regular file, is
  // accessible by group or others (insecure_key_file: run chmod 600), is encrypted or holds
  // another kind of key (invalid_key_file).
  static key_file_result<site_key> load(const std::filesystem::path& file);

  // The key in `file`, or, when `file` does not exist, a new key saved there (overwrite::no, so
  // two processes starting at once end up with the same key) and loaded back. `created` tells
  // which happened. The directory must exist. For daemons that sign from their first start
  // (proxyhelperd); the relay's site key is created explicitly with `lanrelay key generate`.
  static key_file_result<site_key> load_or_generate(const std::filesystem::path& file,
                                                    bool* created = nullptr);

  // The key whose RFC 8032 private seed is `seed`: for fixed test vectors only; real keys come
  // from generate().
  static result<site_key> from_seed(std::span<const std::byte, 32> seed);

  site_key(site_key&&) noexcept;
  site_key& operator=(site_key&&) noexcept;
  site_key(const site_key&) = delete;
  site_key& operator=(const site_key&) = delete;
  ~site_key();

  // Writes the key as PEM PKCS#8, mode 0600, atomically: a temporary file in the same directory
  // is written, fsynced and then renamed (overwrite::yes) or hard-linked (overwrite::no, which
  // fails with file_exists when `file` exists) into place, and the directory is fsynced. The
  // directory must exist.
  key_file_result<void> save(const std::filesystem::path& file,
                             overwrite mode = overwrite::no) const;

  lanrelay::public_key public_key() const;

  // Throws boost::system::system_error (crypto_failure) only when OpenSSL fails.
  ed25519_signature sign(std::span<const std::byte> message) const;

 private:
  struct impl;
  explicit site_key(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

struct catalog_entry {
  item_kind kind = item_kind::file;
  std::string name;     // is_valid_name
  std::string version;  // canonical_version(kind, version) == version
  std::uint64_t size = 0;
  sha256_digest sha256{};
  // SHA-256 of the item's piece list, when the relay published one.
  std::optional<sha256_digest> pieces;

  bool operator==(const catalog_entry&) const = default;
};

struct catalog {
  // No two with the same kind, name and version.
  std::vector<catalog_entry> entries;
  std::chrono::system_clock::time_point issued_at;   // signed as whole seconds (floored)
  std::chrono::system_clock::time_point expires_at;  // later than issued_at
  std::string relay_id;  // 1..max_relay_id_length printable ASCII characters (0x20..0x7e)
  // SHA-256 of each DER certificate the relay serves HTTPS with; at most
  // max_catalog_tls_fingerprints, no duplicates.
  std::vector<sha256_digest> tls_certificates;
  // Exact URLs of the relay's items on other hosts (is_valid_catalog_url); at most
  // max_catalog_urls, no duplicates.
  std::vector<std::string> urls;

  bool operator==(const catalog&) const = default;
};

// An absolute http:// or https:// URL (lower-case scheme) with a host, without userinfo or
// fragment, at most max_catalog_url_length bytes.
bool is_valid_catalog_url(std::string_view url);

// The catalog rules that sign_catalog requires and verify_catalog enforces (invalid_content,
// too_large).
result<void> validate_catalog(const catalog& c);

// The bytes the signature covers (see the top of this file). Times are floored to seconds;
// `c` is expected to pass validate_catalog.
std::vector<std::byte> canonical_catalog_bytes(const catalog& c);

// The signed JSON document. Throws boost::system::system_error when `c` fails validate_catalog
// (a bug of the caller: a relay builds catalogs from validated store items) or OpenSSL fails.
std::string sign_catalog(const catalog& c, const site_key& key);

// Checks, in order: size, JSON and structure (malformed), the document's key against `pinned`
// (wrong_key), the signature (bad_signature), the catalog rules (invalid_content), then time:
// issued_at later than now + catalog_clock_skew (not_yet_valid), now at or past expires_at
// (expired). A valid document replayed later verifies until it expires; callers that must not
// go back to an older catalog compare issued_at with the one they hold.
result<catalog> verify_catalog(std::string_view document, const public_key& pinned,
                               std::chrono::system_clock::time_point now);

// The entry for `kind`, `name` and `version`; `version` is canonicalised first, so "16.679.00"
// finds pattern 1667900. nullopt when absent or when `version` does not parse for `kind`.
std::optional<catalog_entry> find_entry(const catalog& c, item_kind kind, std::string_view name,
                                        std::string_view version);

}  // namespace lanrelay

template <>
struct boost::system::is_error_code_enum<lanrelay::trust_errc> : std::true_type {};
