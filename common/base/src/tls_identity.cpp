#include "lanrelay/base/tls_identity.hpp"

#include "lanrelay/base/file_io.hpp"

#include <spdlog/spdlog.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace lanrelay {
namespace {

// Large enough for any sensible certificate or key; a bigger file is not one.
constexpr std::size_t max_pem_file = 256 * 1024;
// A pinned self-signed certificate needs no renewal; its dates only have to cover its use.
constexpr long certificate_validity_seconds = 20L * 365 * 24 * 3600;

struct bio_free {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct x509_free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

key_file_error crypto_error(const std::string& what) {
  ERR_clear_error();
  return key_file_error{make_error_code(trust_errc::crypto_failure),
                        what + ": " + make_error_code(trust_errc::crypto_failure).message()};
}

key_file_error file_error(boost::system::error_code code, const std::string& message) {
  return key_file_error{code, message};
}

std::string errno_text(int error) {
  return boost::system::error_code(error, boost::system::system_category()).message();
}

x509_ptr parse_certificate(const std::string& pem) {
  bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    return nullptr;
  }
  x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert;
}

pkey_ptr parse_private_key(const std::string& pem) {
  bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    return nullptr;
  }
  // A null password callback with an encrypted key fails instead of prompting on a terminal.
  pkey_ptr key(PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                       [](char*, int, int, void*) { return 0; }, nullptr));
  ERR_clear_error();
  return key;
}

std::optional<sha256_digest> der_fingerprint(X509* cert) {
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  if (length <= 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  const auto digest = sha256_of(std::as_bytes(std::span(der, static_cast<std::size_t>(length))));
  OPENSSL_free(der);
  return digest;
}

template <class Write>
std::optional<std::string> to_pem(Write write) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  std::string out(data, static_cast<std::size_t>(size));
  OPENSSL_cleanse(data, static_cast<std::size_t>(size));
  return out;
}

// A self-signed certificate for `key`.
x509_ptr make_certificate(EVP_PKEY* key, std::string_view common_name) {
  x509_ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return nullptr;
  }
  std::array<unsigned char, 16> serial{};
  if (RAND_bytes(serial.data(), serial.size()) != 1) {
    return nullptr;
  }
  serial[0] &= 0x7f;  // a positive INTEGER
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(serial.data(), serial.size(), nullptr),
                                                 &BN_free);
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return nullptr;
  }
  // Valid from an hour ago: a client whose clock is a little behind still accepts it.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), certificate_validity_seconds) == nullptr) {
    return nullptr;
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn(common_name.empty() ? "lanrelay" : common_name.substr(0, 64));
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key) != 1 ||
      X509_sign(cert.get(), key, EVP_sha256()) <= 0) {
    return nullptr;
  }
  return cert;
}

// Creates `file` with O_EXCL (never following a link) and writes `text` durably. EEXIST is
// returned as is, so that the caller can load what another process wrote.
result<void> write_new_file(const std::filesystem::path& file, std::string_view text,
                            ::mode_t mode) {
  unique_fd fd = open_fd(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  if (!fd) {
    return last_errno();
  }
  // The umask can only remove bits, but make the mode exact.
  if (::fchmod(fd.get(), mode) != 0) {
    const auto ec = last_errno();
    ::unlink(file.c_str());
    return ec;
  }
  if (auto written = write_all(fd.get(), std::as_bytes(std::span(text.data(), text.size())));
      !written) {
    ::unlink(file.c_str());
    return written.error();
  }
  if (auto synced = sync_fd(fd.get()); !synced) {
    ::unlink(file.c_str());
    return synced.error();
  }
  return {};
}

key_file_result<std::string> read_pem_file(const std::filesystem::path& file, bool secret) {
  struct ::stat st {};
  if (::lstat(file.c_str(), &st) != 0) {
    const int error = errno;
    return file_error(boost::system::error_code(error, boost::system::system_category()),
                      "cannot read " + file.string() + ": " + errno_text(error) +
                          (secret ? "; set https.private_key or remove https.certificate to have "
                                    "one generated"
                                  : ""));
  }
  if (!S_ISREG(st.st_mode)) {
    return file_error(make_error_code(trust_errc::invalid_key_file),
                      file.string() + " is not a regular file (a symbolic link or a directory); "
                                      "point the setting at the file itself");
  }
  if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return file_error(make_error_code(trust_errc::insecure_key_file),
                      "the TLS private key " + file.string() +
                          " is accessible by group or others; run chmod 600 on it");
  }
  auto text = read_small_file(file, max_pem_file);
  if (!text) {
    const int error = errno;
    return file_error(boost::system::error_code(error != 0 ? error : EIO,
                                                boost::system::system_category()),
                      "cannot read " + file.string() + " (or it is larger than 256 KiB)");
  }
  return std::move(*text);
}

}  // namespace

tls_identity::~tls_identity() {
  if (!private_key_pem_.empty()) {
    OPENSSL_cleanse(private_key_pem_.data(), private_key_pem_.size());
  }
}

std::string fingerprint_text(const sha256_digest& fingerprint) { return to_hex(fingerprint); }

std::optional<sha256_digest> peer_certificate_fingerprint(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) {
    return std::nullopt;
  }
  auto fingerprint = der_fingerprint(cert);
  X509_free(cert);
  return fingerprint;
}

key_file_result<sha256_digest> certificate_fingerprint(const std::filesystem::path& certificate) {
  auto text = read_pem_file(certificate, false);
  if (!text) {
    return text.error();
  }
  const x509_ptr cert = parse_certificate(*text);
  if (!cert) {
    return file_error(make_error_code(trust_errc::invalid_key_file),
                      certificate.string() + " holds no PEM certificate (\"-----BEGIN "
                                             "CERTIFICATE-----\")");
  }
  const auto fingerprint = der_fingerprint(cert.get());
  if (!fingerprint) {
    return crypto_error("cannot encode the certificate " + certificate.string());
  }
  return *fingerprint;
}

key_file_result<tls_identity> tls_identity::load(const std::filesystem::path& certificate,
                                                 const std::filesystem::path& private_key) {
  auto key_text = read_pem_file(private_key, true);
  if (!key_text) {
    return key_text.error();
  }
  auto cert_text = read_pem_file(certificate, false);
  if (!cert_text) {
    return cert_text.error();
  }
  const x509_ptr cert = parse_certificate(*cert_text);
  if (!cert) {
    return file_error(make_error_code(trust_errc::invalid_key_file),
                      certificate.string() + " holds no PEM certificate (\"-----BEGIN "
                                             "CERTIFICATE-----\")");
  }
  const pkey_ptr key = parse_private_key(*key_text);
  OPENSSL_cleanse(key_text->data(), key_text->size());
  if (!key) {
    return file_error(make_error_code(trust_errc::invalid_key_file),
                      private_key.string() + " holds no unencrypted PEM private key");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return file_error(make_error_code(trust_errc::invalid_key_file),
                      "the private key " + private_key.string() +
                          " does not belong to the certificate " + certificate.string() +
                          "; configure the matching pair");
  }
  const auto fingerprint = der_fingerprint(cert.get());
  auto cert_pem = to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); });
  auto key_pem = to_pem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  if (!fingerprint || !cert_pem || !key_pem) {
    return crypto_error("cannot encode the TLS identity from " + certificate.string());
  }
  tls_identity identity;
  identity.certificate_pem_ = std::move(*cert_pem);
  identity.private_key_pem_ = std::move(*key_pem);
  identity.fingerprint_ = *fingerprint;
  return identity;
}

key_file_result<tls_identity> tls_identity::load_or_generate(
    const std::filesystem::path& certificate, const std::filesystem::path& private_key,
    std::string_view common_name, bool* created) {
  if (created != nullptr) {
    *created = false;
  }
  std::error_code ec;
  const bool have_key = std::filesystem::exists(std::filesystem::symlink_status(private_key, ec));
  const bool have_cert = std::filesystem::exists(std::filesystem::symlink_status(certificate, ec));
  if (have_key && have_cert) {
    return load(certificate, private_key);
  }
  if (have_cert) {
    return file_error(make_error_code(trust_errc::invalid_key_file),
                      "the TLS certificate " + certificate.string() + " exists but its key " +
                          private_key.string() +
                          " does not; remove the certificate to have a new pair generated");
  }

  pkey_ptr key;
  if (have_key) {
    // A crash between writing the key and the certificate: certify the key that is there.
    auto key_text = read_pem_file(private_key, true);
    if (!key_text) {
      return key_text.error();
    }
    key = parse_private_key(*key_text);
    OPENSSL_cleanse(key_text->data(), key_text->size());
    if (!key) {
      return file_error(make_error_code(trust_errc::invalid_key_file),
                        private_key.string() +
                            " holds no unencrypted PEM private key; remove it to have a new pair "
                            "generated");
    }
  } else {
    key.reset(EVP_EC_gen("P-256"));
    if (!key) {
      return crypto_error("cannot generate a TLS key for " + private_key.string());
    }
    auto key_pem = to_pem([&](BIO* b) {
      return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    if (!key_pem) {
      return crypto_error("cannot encode the TLS key for " + private_key.string());
    }
    auto written = write_new_file(private_key, *key_pem, 0600);
    OPENSSL_cleanse(key_pem->data(), key_pem->size());
    if (!written && written.error() != boost::system::errc::file_exists) {
      return file_error(written.error(), "cannot write the TLS key " + private_key.string() + ": " +
                                             written.error().message() +
                                             "; check the directory's permissions");
    }
    if (!written) {
      return load_or_generate(certificate, private_key, common_name, created);  // another process
    }
  }

  const x509_ptr cert = make_certificate(key.get(), common_name);
  if (!cert) {
    return crypto_error("cannot make a certificate for " + private_key.string());
  }
  auto cert_pem = to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); });
  if (!cert_pem) {
    return crypto_error("cannot encode the certificate " + certificate.string());
  }
  if (auto written = write_new_file(certificate, *cert_pem, 0644);
      !written && written.error() != boost::system::errc::file_exists) {
    return file_error(written.error(), "cannot write the TLS certificate " + certificate.string() +
                                           ": " + written.error().message());
  }
  const auto directory =
      certificate.has_parent_path() ? certificate.parent_path() : std::filesystem::path(".");
  if (auto synced = sync_dir(directory); !synced) {
    return file_error(synced.error(), "cannot sync the directory " + directory.string() + ": " +
                                          synced.error().message());
  }
  if (created != nullptr) {
    *created = true;
  }
  return load(certificate, private_key);
}

result<std::shared_ptr<boost::asio::ssl::context>> tls_identity::make_server_context() const {
  auto context = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  const x509_ptr cert = parse_certificate(certificate_pem_);
  const pkey_ptr key = parse_private_key(private_key_pem_);
  if (!cert || !key || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_use_certificate(ctx, cert.get()) != 1 || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return make_error_code(trust_errc::crypto_failure);
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  return context;
}

std::filesystem::path tls_identity_source::certificate_path() const {
  return certificate.empty() ? state_dir / (stem + ".crt") : certificate;
}

std::filesystem::path tls_identity_source::private_key_path() const {
  return private_key.empty() ? state_dir / (stem + ".key") : private_key;
}

key_file_result<tls_identity> tls_identity_source::load() const {
  if (!certificate.empty() || !private_key.empty()) {
    if (certificate.empty() || private_key.empty()) {
      return file_error(make_error_code(boost::system::errc::invalid_argument),
                        "https.certificate and https.private_key go together: set both, or "
                        "neither to have a self-signed pair generated in the state directory");
    }
    return tls_identity::load(certificate, private_key);
  }
  return tls_identity::load_or_generate(certificate_path(), private_key_path(), common_name);
}

key_file_result<std::shared_ptr<tls_server_context>> tls_server_context::create(
    tls_identity_source source) {
  auto identity = source.load();
  if (!identity) {
    return identity.error();
  }
  auto context = identity->make_server_context();
  if (!context) {
    return crypto_error("cannot use the TLS identity " + source.certificate_path().string());
  }
  auto first = std::make_shared<const snapshot>(snapshot{*context, identity->fingerprint()});
  return std::make_shared<tls_server_context>(std::move(source), std::move(first));
}

key_file_result<void> tls_server_context::reload() {
  auto identity = source_.load();
  if (!identity) {
    return identity.error();
  }
  auto context = identity->make_server_context();
  if (!context) {
    return crypto_error("cannot use the TLS identity " + source_.certificate_path().string());
  }
  current_.store(std::make_shared<const snapshot>(snapshot{*context, identity->fingerprint()}));
  return {};
}

std::optional<sha256_digest> tls_server_context::reload_and_log() {
  const auto before = current()->fingerprint;
  if (auto reloaded = reload(); !reloaded) {
    spdlog::error("event=tls_reload_failed error=\"{}\" hint=\"the running certificate is kept\"",
                  reloaded.error().message);
    return std::nullopt;
  }
  const auto after = current()->fingerprint;
  if (after == before) {
    return std::nullopt;
  }
  spdlog::info("event=tls_certificate_reloaded certificate_sha256={}", fingerprint_text(after));
  return after;
}

}  // namespace lanrelay
