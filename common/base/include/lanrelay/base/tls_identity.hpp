#pragma once

// A daemon's TLS identity for its HTTPS listener: one certificate and its private key, and the
// SHA-256 fingerprint of the DER certificate, which is what clients pin (the relay publishes it
// in its signed catalog, so agents and the CLI pin it through the site key, without a PKI).
//
// Files: PEM certificate (one certificate; a chain is not needed since clients pin) and PEM
// private key (PKCS#8 or traditional; ECDSA, Ed25519 or RSA). The key file must be a regular file
// not accessible by group or others (insecure_key_file otherwise, like the site key).
//
// Generated identity (load_or_generate): when neither file exists, an ECDSA P-256 key and a
// self-signed certificate valid 20 years are created. The key is written first, mode 0600 with
// O_CREAT|O_EXCL|O_NOFOLLOW, fsynced, then the certificate (0644) likewise, then the directory is
// fsynced. Two processes starting at once: the one whose O_EXCL fails loads what the other wrote.
// A key without a certificate (a crash between the two writes) gets a new certificate for that
// key; a certificate without a key is an error that names both files.
//
// Thread safety: a tls_identity is immutable. tls_server_context::current() and reload() may be
// called from any thread at once; a connection keeps the context it started with.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/sha256.hpp"
#include "lanrelay/base/site_key.hpp"

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace lanrelay {

class tls_identity {
 public:
  // Reads both files. Errors name the file and say what to do.
  static key_file_result<tls_identity> load(const std::filesystem::path& certificate,
                                            const std::filesystem::path& private_key);

  // The files when they exist; else a new self-signed identity for `common_name` written there
  // (see the top of this file). `created` tells whether anything was written.
  static key_file_result<tls_identity> load_or_generate(const std::filesystem::path& certificate,
                                                        const std::filesystem::path& private_key,
                                                        std::string_view common_name,
                                                        bool* created = nullptr);

  const std::string& certificate_pem() const noexcept { return certificate_pem_; }
  // SHA-256 of the DER encoding of the certificate.
  const sha256_digest& fingerprint() const noexcept { return fingerprint_; }

  // A TLS server context (TLS 1.2 and later) presenting this identity.
  result<std::shared_ptr<boost::asio::ssl::context>> make_server_context() const;

  tls_identity(tls_identity&&) noexcept = default;
  tls_identity& operator=(tls_identity&&) noexcept = default;
  ~tls_identity();

 private:
  tls_identity() = default;
  std::string certificate_pem_;
  std::string private_key_pem_;  // wiped on destruction
  sha256_digest fingerprint_{};
};

// The fingerprint as clients and administrators see it: 64 lower-case hex digits.
std::string fingerprint_text(const sha256_digest& fingerprint);

// SHA-256 of the DER certificate the peer of a TLS connection presented (after the handshake);
// nullopt without one. What clients compare with their pins.
std::optional<sha256_digest> peer_certificate_fingerprint(SSL* ssl);

// The fingerprint of the (first) certificate in a PEM file, e.g. for `lanrelay key show`.
key_file_result<sha256_digest> certificate_fingerprint(const std::filesystem::path& certificate);

// Where a daemon's identity comes from: two configured files, or (both empty) the generated
// pair `<state_dir>/<stem>.crt` and `<state_dir>/<stem>.key`.
struct tls_identity_source {
  std::filesystem::path certificate;  // empty: generated
  std::filesystem::path private_key;  // empty: generated
  std::filesystem::path state_dir;
  std::string stem = "tls";
  std::string common_name = "lanrelay";

  std::filesystem::path certificate_path() const;
  std::filesystem::path private_key_path() const;
  key_file_result<tls_identity> load() const;
};

// The context new HTTPS connections use, swapped whole by reload() (SIGHUP) so that a renewed
// certificate applies to the next connection without a restart.
class tls_server_context {
 public:
  static key_file_result<std::shared_ptr<tls_server_context>> create(tls_identity_source source);

  struct snapshot {
    std::shared_ptr<boost::asio::ssl::context> context;
    sha256_digest fingerprint{};
  };
  std::shared_ptr<const snapshot> current() const { return current_.load(); }

  // Reads the files again; on failure the running identity is kept and the error returned.
  key_file_result<void> reload();

  // The SIGHUP step of both daemons: reload(), logging a failure (`event=tls_reload_failed`, the
  // running certificate is kept) or a new certificate (`event=tls_certificate_reloaded`). Returns
  // the new fingerprint when the certificate changed, nullopt otherwise.
  std::optional<sha256_digest> reload_and_log();

  explicit tls_server_context(tls_identity_source source, std::shared_ptr<const snapshot> first)
      : source_(std::move(source)), current_(std::move(first)) {}

 private:
  const tls_identity_source source_;
  std::atomic<std::shared_ptr<const snapshot>> current_;
};

}  // namespace lanrelay
