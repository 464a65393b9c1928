#include "lanrelay/base/site_key.hpp"
#include "lanrelay/base/text_format.hpp"

#include <boost/json.hpp>
#include <boost/system/system_error.hpp>
#include <boost/url/parse.hpp>
#include <boost/throw_exception.hpp>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <set>
#include <tuple>
#include <utility>

namespace lanrelay {
namespace {

namespace json = boost::json;

std::string trust_message(trust_errc value) {
  switch (value) {
    case trust_errc::malformed:
      return "the catalog is not a valid lanrelay catalog document (bad JSON, or a member "
             "missing, unknown or of the wrong type); it was ignored";
    case trust_errc::too_large:
      return "the catalog is larger than allowed; it was ignored";
    case trust_errc::wrong_key:
      return "the catalog is signed with a key other than the pinned site key; if the relay's "
             "key was rotated, pin the new public key in the agent configuration";
    case trust_errc::bad_signature:
      return "the catalog signature does not match its content: it was altered or forged, "
             "and was ignored";
    case trust_errc::invalid_content:
      return "the signed catalog breaks the catalog rules (an entry's name, kind or version, a "
             "duplicate entry, the relay id or the validity period); the relay that signed it "
             "needs fixing";
    case trust_errc::expired:
      return "the catalog has expired; the relay must sign a fresh one (check that the relay "
             "runs and that both clocks are right)";
    case trust_errc::not_yet_valid:
      return "the catalog is issued in the future; check the clocks of the relay and of this "
             "machine";
    case trust_errc::malformed_key:
      return "not a lanrelay public key: expected \"lanrelay-ed25519:\" followed by the "
             "base64 of 32 bytes, as printed by the relay";
    case trust_errc::invalid_key_file:
      return "the site key file does not hold an unencrypted Ed25519 private key in PEM form";
    case trust_errc::insecure_key_file:
      return "the site key file is accessible by group or others; run chmod 600 on it";
    case trust_errc::crypto_failure:
      return "the cryptographic library (OpenSSL) failed; check the OpenSSL installation and "
             "available memory";
  }
  return "unknown trust error " + std::to_string(static_cast<int>(value));
}

struct pkey_deleter {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct pkey_ctx_deleter {
  void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct bio_deleter {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_deleter>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_deleter>;
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;

// OpenSSL takes a non-null pointer even for an empty message.
const unsigned char* message_pointer(std::span<const std::byte> message) noexcept {
  static const unsigned char empty = 0;
  return message.empty() ? &empty : reinterpret_cast<const unsigned char*>(message.data());
}

[[noreturn]] void throw_crypto_failure() {
  ERR_clear_error();
  boost::throw_exception(boost::system::system_error(make_error_code(trust_errc::crypto_failure)));
}

std::string base64_encode(std::span<const std::byte> data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(data.data()),
                                      static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(std::max(written, 0)));
  return out;
}

constexpr bool is_base64_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=';
}

// Exactly N bytes in canonical padded base64, and nothing else. EVP_DecodeBlock trims
// whitespace and ignores padding, so the text is checked first and re-encoded afterwards.
template <std::size_t N>
std::optional<std::array<std::byte, N>> base64_decode_exact(std::string_view text) {
  constexpr std::size_t encoded_size = 4 * ((N + 2) / 3);
  if (text.size() != encoded_size || !std::all_of(text.begin(), text.end(), is_base64_char)) {
    return std::nullopt;
  }
  std::array<unsigned char, encoded_size / 4 * 3> decoded{};
  const int n = EVP_DecodeBlock(decoded.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n != static_cast<int>(decoded.size())) {
    ERR_clear_error();
    return std::nullopt;
  }
  std::array<std::byte, N> out{};
  std::memcpy(out.data(), decoded.data(), N);
  if (base64_encode(out) != text) {
    return std::nullopt;
  }
  return out;
}

// ---- files ----

class unique_fd {
 public:
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const noexcept { return fd_; }
  // Closes now, reporting the error that a deferred close would lose.
  int close() noexcept {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

boost::system::error_code last_system_error() noexcept {
  return {errno, boost::system::system_category()};
}

key_file_error system_failure(std::string_view what, const std::filesystem::path& file,
                              boost::system::error_code ec) {
  return {ec, std::string(what) + " " + file.string() + ": " + ec.message()};
}

std::string mode_text(mode_t mode) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%04o", static_cast<unsigned>(mode & 07777));
  return buffer;
}

constexpr std::size_t max_key_file_size = 64 * 1024;

// Writes all of `data`, retrying on EINTR and short writes.
bool write_all(int fd, std::string_view data) noexcept {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Removes the temporary file unless released.
class temp_file_guard {
 public:
  explicit temp_file_guard(std::filesystem::path p) : path_(std::move(p)) {}
  temp_file_guard(const temp_file_guard&) = delete;
  temp_file_guard& operator=(const temp_file_guard&) = delete;
  ~temp_file_guard() {
    if (!path_.empty()) {
      ::unlink(path_.c_str());
    }
  }
  void release() noexcept { path_.clear(); }

 private:
  std::filesystem::path path_;
};

// Overwrites the secret before the string frees it.
class cleansed_string {
 public:
  cleansed_string() = default;
  cleansed_string(const cleansed_string&) = delete;
  cleansed_string& operator=(const cleansed_string&) = delete;
  ~cleansed_string() { OPENSSL_cleanse(text.data(), text.size()); }
  std::string text;
};

// ---- catalog encoding ----

constexpr std::string_view canonical_context{"lanrelay-catalog-v2\0", 20};
constexpr std::int64_t catalog_format = 2;

std::uint8_t kind_code(item_kind kind) noexcept {
  switch (kind) {
    case item_kind::installer:
      return 1;
    case item_kind::pattern:
      return 2;
    case item_kind::file:
      return 3;
  }
  return 0;
}

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) noexcept {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_unix_seconds(std::int64_t s) noexcept {
  return std::chrono::system_clock::time_point{std::chrono::seconds{s}};
}

class byte_writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(std::byte{v}); }
  void u32(std::uint32_t v) { big_endian(v, 4); }
  void u64(std::uint64_t v) { big_endian(v, 8); }
  void i64(std::int64_t v) { big_endian(static_cast<std::uint64_t>(v), 8); }
  void raw(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out_.insert(out_.end(), p, p + s.size());
  }
  void raw(std::span<const std::byte> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void string(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    raw(s);
  }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  void big_endian(std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) {
      out_.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
    }
  }
  std::vector<std::byte> out_;
};

bool is_valid_relay_id(std::string_view id) noexcept {
  return !id.empty() && id.size() <= max_relay_id_length &&
         std::all_of(id.begin(), id.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool is_valid_catalog_time(std::int64_t s) noexcept { return s >= 0 && s <= max_catalog_time; }

// True when `o` has exactly the members `names` (Boost.JSON keeps one value per key).
bool has_exactly(const json::object& o, std::initializer_list<std::string_view> names) {
  return o.size() == names.size() &&
         std::all_of(names.begin(), names.end(), [&](std::string_view n) { return o.contains(n); });
}

std::optional<std::string_view> get_string(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || !v->is_string()) {
    return std::nullopt;
  }
  const auto& s = v->get_string();
  return std::string_view(s.data(), s.size());
}

std::optional<std::uint64_t> get_unsigned(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr) {
    return std::nullopt;
  }
  if (v->is_int64() && v->get_int64() >= 0) {
    return static_cast<std::uint64_t>(v->get_int64());
  }
  if (v->is_uint64()) {
    return v->get_uint64();
  }
  return std::nullopt;
}

std::optional<std::int64_t> get_time(const json::object& o, std::string_view name) {
  const auto v = get_unsigned(o, name);
  if (!v || *v > static_cast<std::uint64_t>(max_catalog_time)) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(*v);
}

// Types and shapes only; the catalog rules are checked after the signature.
result<catalog_entry> decode_entry(const json::value& value) {
  const auto* o = value.if_object();
  if (o == nullptr) {
    return trust_errc::malformed;
  }
  std::optional<sha256_digest> pieces;
  if (o->contains("pieces")) {
    const auto pieces_text = get_string(*o, "pieces");
    pieces = pieces_text ? parse_sha256_hex(*pieces_text) : std::nullopt;
    if (!pieces || !has_exactly(*o, {"kind", "name", "version", "size", "sha256", "pieces"})) {
      return trust_errc::malformed;
    }
  } else if (!has_exactly(*o, {"kind", "name", "version", "size", "sha256"})) {
    return trust_errc::malformed;
  }
  const auto kind_text = get_string(*o, "kind");
  const auto kind = kind_text ? parse_item_kind(*kind_text) : std::nullopt;
  const auto name = get_string(*o, "name");
  const auto version = get_string(*o, "version");
  const auto size = get_unsigned(*o, "size");
  const auto sha_text = get_string(*o, "sha256");
  const auto sha = sha_text ? parse_sha256_hex(*sha_text) : std::nullopt;
  if (!kind || !name || !version || !size || !sha) {
    return trust_errc::malformed;
  }
  return catalog_entry{*kind, std::string(*name), std::string(*version), *size, *sha, pieces};
}

result<catalog> decode_catalog(const json::value& value) {
  const auto* o = value.if_object();
  if (o == nullptr ||
      !(has_exactly(*o, {"format", "relay_id", "issued_at", "expires_at", "tls", "entries"}) ||
        has_exactly(*o,
                    {"format", "relay_id", "issued_at", "expires_at", "tls", "entries", "urls"}))) {
    return trust_errc::malformed;
  }
  const auto* format = o->if_contains("format");
  if (!format->is_int64() || format->get_int64() != catalog_format) {
    return trust_errc::malformed;
  }
  const auto relay_id = get_string(*o, "relay_id");
  const auto issued_at = get_time(*o, "issued_at");
  const auto expires_at = get_time(*o, "expires_at");
  const auto* entries = o->if_contains("entries")->if_array();
  const auto* tls = o->if_contains("tls")->if_array();
  if (!relay_id || !issued_at || !expires_at || entries == nullptr || tls == nullptr) {
    return trust_errc::malformed;
  }
  const auto* urls = o->contains("urls") ? o->if_contains("urls")->if_array() : nullptr;
  if (o->contains("urls") && urls == nullptr) {
    return trust_errc::malformed;
  }
  if (entries->size() > max_catalog_entries || tls->size() > max_catalog_tls_fingerprints ||
      (urls != nullptr && urls->size() > max_catalog_urls)) {
    return trust_errc::too_large;
  }
  catalog c;
  if (urls != nullptr) {
    c.urls.reserve(urls->size());
    for (const auto& url : *urls) {
      const auto* text = url.if_string();
      if (text == nullptr) {
        return trust_errc::malformed;
      }
      c.urls.emplace_back(text->data(), text->size());
    }
  }
  for (const auto& fingerprint : *tls) {
    const auto* text = fingerprint.if_string();
    const auto digest =
        text ? parse_sha256_hex(std::string_view(text->data(), text->size())) : std::nullopt;
    if (!digest) {
      return trust_errc::malformed;
    }
    c.tls_certificates.push_back(*digest);
  }
  c.relay_id = std::string(*relay_id);
  c.issued_at = from_unix_seconds(*issued_at);
  c.expires_at = from_unix_seconds(*expires_at);
  c.entries.reserve(entries->size());
  for (const auto& e : *entries) {
    auto entry = decode_entry(e);
    if (!entry) {
      return entry.error();
    }
    c.entries.push_back(std::move(*entry));
  }
  return c;
}

}  // namespace

const boost::system::error_category& trust_category() noexcept {
  static const error_category_of<trust_errc> category(
      "lanrelay.trust", 0x6c6e72792d747275ULL, trust_message);
  return category;
}

// ---- public key ----

std::string public_key::to_string() const {
  return std::string(public_key_prefix) + base64_encode(bytes);
}

result<public_key> parse_public_key(std::string_view text) {
  if (!text.starts_with(public_key_prefix)) {
    return trust_errc::malformed_key;
  }
  const auto raw = base64_decode_exact<32>(text.substr(public_key_prefix.size()));
  if (!raw) {
    return trust_errc::malformed_key;
  }
  return public_key{*raw};
}

bool verify(const public_key& key, std::span<const std::byte> message,
            std::span<const std::byte> signature) noexcept {
  if (signature.size() != std::tuple_size_v<ed25519_signature>) {
    return false;
  }
  const pkey_ptr pkey(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(key.bytes.data()),
      key.bytes.size()));
  const md_ctx_ptr ctx(EVP_MD_CTX_new());
  const bool ok =
      pkey && ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), message_pointer(message), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

void throw_exception_from_error(const key_file_error& e, const boost::source_location& loc) {
  boost::throw_with_location(boost::system::system_error(e.code, e.message), loc);
}

// ---- site key ----

struct site_key::impl {
  pkey_ptr key;
};

site_key::site_key(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
site_key::site_key(site_key&&) noexcept = default;
site_key& site_key::operator=(site_key&&) noexcept = default;
site_key::~site_key() = default;

result<site_key> site_key::generate() {
  const pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    ERR_clear_error();
    return trust_errc::crypto_failure;
  }
  return site_key(std::make_unique<impl>(impl{pkey_ptr(raw)}));
}

key_file_result<site_key> site_key::load(const std::filesystem::path& file) {
  unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    return system_failure("cannot open the site key file", file, last_system_error());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return system_failure("cannot stat the site key file", file, last_system_error());
  }
  if (!S_ISREG(st.st_mode)) {
    return key_file_error{make_error_code(trust_errc::invalid_key_file),
                          "the site key file " + file.string() + " is not a regular file"};
  }
  // Checked on the open descriptor, so a file swapped after the check cannot slip through.
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return key_file_error{
        make_error_code(trust_errc::insecure_key_file),
        "the site key file " + file.string() + " has mode " + mode_text(st.st_mode) +
            ", so group or others can access it; the key must be private to the relay: run "
            "chmod 600 " +
            file.string() +
            " (and, if anyone else may have read it, generate a new key and re-pin it)"};
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_key_file_size) {
    return key_file_error{
        make_error_code(trust_errc::invalid_key_file),
        "the site key file " + file.string() + " is too large to be a key; check the path"};
  }
  cleansed_string contents;
  contents.text.resize(max_key_file_size + 1);
  std::size_t filled = 0;
  while (filled < contents.text.size()) {
    const ssize_t n =
        ::read(fd.get(), contents.text.data() + filled, contents.text.size() - filled);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return system_failure("cannot read the site key file", file, last_system_error());
    }
    if (n == 0) {
      break;
    }
    filled += static_cast<std::size_t>(n);
  }
  if (filled > max_key_file_size) {
    return key_file_error{
        make_error_code(trust_errc::invalid_key_file),
        "the site key file " + file.string() + " is too large to be a key; check the path"};
  }
  const bio_ptr bio(BIO_new_mem_buf(contents.text.data(), static_cast<int>(filled)));
  if (!bio) {
    ERR_clear_error();
    return key_file_error{make_error_code(trust_errc::crypto_failure),
                          "cannot read the site key file " + file.string() + ": " +
                              make_error_code(trust_errc::crypto_failure).message()};
  }
  // A passphrase callback that refuses: OpenSSL's default would prompt on the terminal.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) -> int { return -1; };
  pkey_ptr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  ERR_clear_error();
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
    return key_file_error{make_error_code(trust_errc::invalid_key_file),
                          "the site key file " + file.string() +
                              " does not hold an unencrypted Ed25519 private key in PEM form; "
                              "create one with `openssl genpkey -algorithm ed25519` or let "
                              "lanrelay generate it"};
  }
  return site_key(std::make_unique<impl>(impl{std::move(key)}));
}

key_file_result<site_key> site_key::load_or_generate(const std::filesystem::path& file,
                                                     bool* created) {
  if (created != nullptr) {
    *created = false;
  }
  std::error_code exists_error;
  if (!std::filesystem::exists(file, exists_error) && !exists_error) {
    auto fresh = generate();
    if (!fresh) {
      return key_file_error{fresh.error(), "cannot generate a key for " + file.string() + ": " +
                                               fresh.error().message()};
    }
    auto saved = fresh->save(file, overwrite::no);
    if (saved) {
      if (created != nullptr) {
        *created = true;
      }
    } else if (saved.error().code != boost::system::errc::file_exists) {
      return saved.error();
    }
  }
  return load(file);
}

result<site_key> site_key::from_seed(std::span<const std::byte, 32> seed) {
  pkey_ptr key(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size()));
  if (!key) {
    ERR_clear_error();
    return trust_errc::crypto_failure;
  }
  return site_key(std::make_unique<impl>(impl{std::move(key)}));
}

key_file_result<void> site_key::save(const std::filesystem::path& file, overwrite mode) const {
  cleansed_string pem;
  {
    const bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl_->key.get(), nullptr, nullptr, 0, nullptr,
                                         nullptr) != 1) {
      ERR_clear_error();
      return key_file_error{make_error_code(trust_errc::crypto_failure),
                            "cannot encode the site key for " + file.string() + ": " +
                                make_error_code(trust_errc::crypto_failure).message()};
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    pem.text.assign(data, static_cast<std::size_t>(size));
    OPENSSL_cleanse(data, static_cast<std::size_t>(size));
  }

  std::array<std::byte, 8> nonce{};
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), nonce.size()) != 1) {
    ERR_clear_error();
    return key_file_error{make_error_code(trust_errc::crypto_failure),
                          "cannot name a temporary file for " + file.string() + ": " +
                              make_error_code(trust_errc::crypto_failure).message()};
  }
  std::string suffix = ".tmp.";
  append_hex(suffix, nonce);
  const auto directory = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const auto temp = directory / (file.filename().string() + suffix);

  unique_fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    return system_failure("cannot create a temporary file for the site key in", directory,
                          last_system_error());
  }
  temp_file_guard guard(temp);
  // The umask can only remove bits from 0600, but make the mode exact anyway.
  if (::fchmod(fd.get(), 0600) != 0 || !write_all(fd.get(), pem.text) || ::fsync(fd.get()) != 0) {
    return system_failure("cannot write the site key file", temp, last_system_error());
  }
  if (fd.close() != 0) {
    return system_failure("cannot write the site key file", temp, last_system_error());
  }

  if (mode == overwrite::yes) {
    if (::rename(temp.c_str(), file.c_str()) != 0) {
      return system_failure("cannot move the site key into place at", file, last_system_error());
    }
    guard.release();
  } else {
    // link(2) fails atomically when the target exists, unlike rename(2).
    if (::link(temp.c_str(), file.c_str()) != 0) {
      const auto ec = last_system_error();
      if (ec.value() == EEXIST) {
        return key_file_error{ec, "the site key file " + file.string() +
                                      " already exists; it was left untouched, because agents "
                                      "pin its public key. Remove it first to rotate the key"};
      }
      return system_failure("cannot move the site key into place at", file, ec);
    }
    // The guard unlinks the temporary name; the key stays under `file`.
  }

  unique_fd dir_fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0 || ::fsync(dir_fd.get()) != 0) {
    return system_failure("cannot sync the directory of the site key", directory,
                          last_system_error());
  }
  return {};
}

lanrelay::public_key site_key::public_key() const {
  lanrelay::public_key out;
  std::size_t size = out.bytes.size();
  if (EVP_PKEY_get_raw_public_key(impl_->key.get(),
                                  reinterpret_cast<unsigned char*>(out.bytes.data()), &size) != 1 ||
      size != out.bytes.size()) {
    throw_crypto_failure();
  }
  return out;
}

ed25519_signature site_key::sign(std::span<const std::byte> message) const {
  ed25519_signature signature{};
  const md_ctx_ptr ctx(EVP_MD_CTX_new());
  std::size_t size = signature.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     message_pointer(message), message.size()) != 1 ||
      size != signature.size()) {
    throw_crypto_failure();
  }
  return signature;
}

// ---- catalog ----

bool is_valid_catalog_url(std::string_view url) {
  if (url.size() > max_catalog_url_length) {
    return false;
  }
  const auto parsed = boost::urls::parse_absolute_uri(url);
  return parsed && (parsed->scheme() == "http" || parsed->scheme() == "https") &&
         !parsed->encoded_host().empty() && !parsed->has_userinfo() && !parsed->has_fragment();
}

result<void> validate_catalog(const catalog& c) {
  if (c.entries.size() > max_catalog_entries ||
      c.tls_certificates.size() > max_catalog_tls_fingerprints ||
      c.urls.size() > max_catalog_urls) {
    return trust_errc::too_large;
  }
  if (!std::all_of(c.urls.begin(), c.urls.end(), is_valid_catalog_url) ||
      std::set<std::string_view>(c.urls.begin(), c.urls.end()).size() != c.urls.size()) {
    return trust_errc::invalid_content;
  }
  if (std::set<sha256_digest>(c.tls_certificates.begin(), c.tls_certificates.end()).size() !=
      c.tls_certificates.size()) {
    return trust_errc::invalid_content;
  }
  const auto issued = unix_seconds(c.issued_at);
  const auto expires = unix_seconds(c.expires_at);
  if (!is_valid_relay_id(c.relay_id) || !is_valid_catalog_time(issued) ||
      !is_valid_catalog_time(expires) || expires <= issued) {
    return trust_errc::invalid_content;
  }
  std::set<std::tuple<item_kind, std::string_view, std::string_view>> seen;
  for (const auto& e : c.entries) {
    if (kind_code(e.kind) == 0 || !is_valid_name(e.name)) {
      return trust_errc::invalid_content;
    }
    const auto canonical = canonical_version(e.kind, e.version);
    if (!canonical || *canonical != e.version) {
      return trust_errc::invalid_content;
    }
    if (!seen.emplace(e.kind, e.name, e.version).second) {
      return trust_errc::invalid_content;
    }
  }
  return {};
}

std::vector<std::byte> canonical_catalog_bytes(const catalog& c) {
  byte_writer w;
  w.raw(canonical_context);
  w.string(c.relay_id);
  w.i64(unix_seconds(c.issued_at));
  w.i64(unix_seconds(c.expires_at));
  w.u32(static_cast<std::uint32_t>(c.tls_certificates.size()));
  for (const auto& fingerprint : c.tls_certificates) {
    w.raw(fingerprint);
  }
  w.u32(static_cast<std::uint32_t>(c.entries.size()));
  for (const auto& e : c.entries) {
    w.u8(kind_code(e.kind));
    w.string(e.name);
    w.string(e.version);
    w.u64(e.size);
    w.raw(e.sha256);
    w.u8(e.pieces ? 1 : 0);
    if (e.pieces) {
      w.raw(*e.pieces);
    }
  }
  if (!c.urls.empty()) {
    w.u32(static_cast<std::uint32_t>(c.urls.size()));
    for (const auto& url : c.urls) {
      w.string(url);
    }
  }
  return w.take();
}

std::string sign_catalog(const catalog& c, const site_key& key) {
  if (const auto valid = validate_catalog(c); !valid) {
    boost::throw_exception(boost::system::system_error(valid.error(), "sign_catalog"));
  }
  json::array entries;
  entries.reserve(c.entries.size());
  for (const auto& e : c.entries) {
    json::object o;
    o["kind"] = to_string(e.kind);
    o["name"] = e.name;
    o["version"] = e.version;
    o["size"] = e.size;
    o["sha256"] = to_hex(e.sha256);
    if (e.pieces) {
      o["pieces"] = to_hex(*e.pieces);
    }
    entries.emplace_back(std::move(o));
  }
  json::array tls;
  for (const auto& fingerprint : c.tls_certificates) {
    tls.emplace_back(to_hex(fingerprint));
  }
  json::object body;
  body["format"] = catalog_format;
  body["relay_id"] = c.relay_id;
  body["issued_at"] = unix_seconds(c.issued_at);
  body["expires_at"] = unix_seconds(c.expires_at);
  body["tls"] = std::move(tls);
  body["entries"] = std::move(entries);
  if (!c.urls.empty()) {
    json::array urls;
    urls.reserve(c.urls.size());
    for (const auto& url : c.urls) {
      urls.emplace_back(url);
    }
    body["urls"] = std::move(urls);
  }

  json::object document;
  document["catalog"] = std::move(body);
  document["signature"] = base64_encode(key.sign(canonical_catalog_bytes(c)));
  document["key"] = key.public_key().to_string();
  return json::serialize(document);
}

result<catalog> verify_catalog(std::string_view document, const public_key& pinned,
                               std::chrono::system_clock::time_point now) {
  if (document.size() > max_catalog_document_size) {
    return trust_errc::too_large;
  }
  boost::system::error_code ec;
  // Defaults are strict: no comments, no trailing commas, valid UTF-8, depth at most 32.
  const json::value root = json::parse(document, ec);
  if (ec) {
    return trust_errc::malformed;
  }
  const auto* top = root.if_object();
  if (top == nullptr || !has_exactly(*top, {"catalog", "signature", "key"})) {
    return trust_errc::malformed;
  }
  const auto key_text = get_string(*top, "key");
  const auto signature_text = get_string(*top, "signature");
  if (!key_text || !signature_text) {
    return trust_errc::malformed;
  }
  const auto key = parse_public_key(*key_text);
  const auto signature = base64_decode_exact<64>(*signature_text);
  if (!key || !signature) {
    return trust_errc::malformed;
  }
  if (*key != pinned) {
    return trust_errc::wrong_key;
  }
  auto decoded = decode_catalog(top->at("catalog"));
  if (!decoded) {
    return decoded.error();
  }
  if (!verify(pinned, canonical_catalog_bytes(*decoded), *signature)) {
    return trust_errc::bad_signature;
  }
  if (auto valid = validate_catalog(*decoded); !valid) {
    return valid.error();
  }
  if (decoded->issued_at > now + catalog_clock_skew) {
    return trust_errc::not_yet_valid;
  }
  if (now >= decoded->expires_at) {
    return trust_errc::expired;
  }
  return decoded;
}

std::optional<catalog_entry> find_entry(const catalog& c, item_kind kind, std::string_view name,
                                        std::string_view version) {
  const auto canonical = canonical_version(kind, version);
  if (!canonical) {
    return std::nullopt;
  }
  const auto it = std::find_if(c.entries.begin(), c.entries.end(), [&](const catalog_entry& e) {
    return e.kind == kind && e.name == name && e.version == *canonical;
  });
  if (it == c.entries.end()) {
    return std::nullopt;
  }
  return *it;
}

}  // namespace lanrelay
