#pragma once

// An authenticating HTTP proxy for tests: Debian's squid, started with a configuration of its own
// on a free port of 127.0.0.1 (and [::1] when the machine has it), asking for one scheme:
//
//   basic      basic_ncsa_auth with an htpasswd file (MD5-crypt, made with openssl passwd)
//   digest     digest_file_auth with a plain user:password file
//   ntlm       ntlm_fake_auth: squid's test helper runs the real three-message handshake but
//              checks no password, so the test tells good from bad by the user name alone
//   negotiate  negotiate_kerberos_auth with the service keytab of HTTP/localhost from a kdc
//              (kdc_fixture.hpp) of the test's own
//
// One user may pass (`user`); every other request gets 407, also when it authenticated: the last
// http_access rule ends on a proxy_auth ACL, so squid asks again rather than answering 403.
// Wrong credentials are therefore a wrong password (basic, digest), another user (ntlm) or a
// Kerberos principal of the realm other than `user` (negotiate).
//
// Never a system service: the program runs as the test's child with `-N` (no daemon) under a
// service name of its own (`-n`), so its pid file and shared memory names cannot meet another
// squid's; the destructor stops it (SIGTERM, then SIGKILL) and removes its shared memory segments
// and its directory. squid drops root for the `proxy` user, so its directory is its own (0755,
// owned by proxy) and holds copies of the files its helpers read.
//
// With squid::listen::http_and_https it also listens with TLS (`https_port`, an HTTPS proxy: TLS
// to the proxy itself) on tls_port(), with the same login. Its certificate, for localhost,
// 127.0.0.1 and ::1, is signed by a CA the fixture makes with openssl (ca_file()); a second CA,
// which signed nothing squid has, stands for a proxy CA file that does not fit
// (other_ca_file()). The tests run Debian's squid-openssl, squid built with OpenSSL
// (deploy/install-deps.sh --test).
//
// The access log has one line per request that squid answered, 407s included, in a format of our
// own (log(), which leaves out connections closed before a request, such as the readiness
// probe's): a test counts the requests a client made.

#include "lanrelay/upstream/http_client.hpp"

#include "kdc_fixture.hpp"
#include "process.hpp"

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::test {

// One line of the proxy's access log.
struct squid_request {
  std::string method;  // "GET", "CONNECT"
  std::string url;     // absolute URL, or host:port for CONNECT
  unsigned status = 0;  // 407 for a refused login
  std::string user;    // as squid's helper named it; "-" when none
};

class squid {
 public:
  static constexpr const char* user = "alice";
  static constexpr const char* password = "s3cret-pa55";
  static constexpr const char* wrong_user = "mallory";
  static constexpr const char* wrong_password = "not-the-password";
  // squid connects to origins from this loopback address: an origin that lets only it in
  // (nginx::allow_only) is reachable through the proxy and nowhere else.
  static constexpr const char* outgoing_address = "127.0.0.2";

  enum class listen { http, http_and_https };

  // Starts squid for `scheme` and waits (30 s guard) until it accepts connections. negotiate
  // needs `realm`; its principals (HTTP/localhost, `user`, `wrong_user`) are added here. Throws
  // std::runtime_error with squid's log when it does not start.
  explicit squid(proxy_auth_scheme scheme, kdc* realm = nullptr, listen ports = listen::http);
  ~squid();
  squid(const squid&) = delete;
  squid& operator=(const squid&) = delete;

  proxy_auth_scheme scheme() const { return scheme_; }
  unsigned short port() const { return port_; }
  // "localhost:<port>": the host is the one the Kerberos service principal names.
  std::string host_port() const;
  // "http://localhost:<port>", without credentials.
  std::string url() const;
  // The same with user and password (percent-encoded) in the userinfo.
  std::string url_with(std::string_view user_name, std::string_view user_password) const;

  // listen::http_and_https: the TLS port, "localhost:<tls port>", "https://localhost:<tls port>"
  // (with user and password: tls_url_with), the CA that signed the port's certificate and one
  // that did not (PEM files).
  unsigned short tls_port() const { return tls_port_; }
  std::string tls_host_port() const;
  std::string tls_url() const;
  std::string tls_url_with(std::string_view user_name, std::string_view user_password) const;
  const std::filesystem::path& ca_file() const { return ca_file_; }
  const std::filesystem::path& other_ca_file() const { return other_ca_file_; }

  // The credentials squid refuses for this scheme: `user` with `wrong_password` for basic and
  // digest, `wrong_user` for ntlm. Not for negotiate (see wrong_keytab()).
  std::string wrong_user_name() const;

  // negotiate: keytabs of `user` (let through) and of `wrong_user` (refused).
  const std::filesystem::path& client_keytab() const { return client_keytab_; }
  const std::filesystem::path& wrong_keytab() const { return wrong_keytab_; }
  // What a client of this proxy needs in its environment: the realm's KRB5_CONFIG for negotiate,
  // nothing otherwise.
  std::vector<std::string> client_environment() const;

  std::vector<squid_request> log() const;
  // squid writes a line once the transaction ends, which may be after its client has the
  // response: waits (30 s guard) until a line satisfies `wanted`, then returns the log.
  std::vector<squid_request> log_once(
      const std::function<bool(const squid_request&)>& wanted) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  bool start();
  void stop();
  void make_certificates();

  proxy_auth_scheme scheme_;
  kdc* realm_;
  std::filesystem::path dir_;
  std::string service_;  // squid -n: names its pid file and shared memory segments
  listen ports_;
  unsigned short port_ = 0;
  unsigned short tls_port_ = 0;
  bool ipv6_ = false;
  std::filesystem::path ca_file_;
  std::filesystem::path other_ca_file_;
  std::filesystem::path client_keytab_;
  std::filesystem::path wrong_keytab_;
  process proc_;
};

}  // namespace lanrelay::test
