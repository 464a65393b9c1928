#pragma once

// An MIT Kerberos realm of a test's own: Debian's krb5kdc on 127.0.0.1, on a free port, with a
// database made by kdb5_util and principals added by kadmin.local, everything in a temporary
// directory that the destructor removes. Nothing of the machine's Kerberos is read or changed:
// every program is started with KRB5_CONFIG (clients) and KRB5_KDC_PROFILE (KDC, kadmin.local)
// naming this directory's files, so /etc/krb5.conf is never looked at.
//
// Host names: the service principal of a proxy is HTTP/<host as the client writes it in the
// proxy URL>. The realm's krb5.conf turns off every DNS step (dns_canonicalize_hostname, rdns,
// dns_lookup_kdc and _realm), so "localhost" stays "localhost" on both sides and no hosts file
// is needed: tests name their proxy http://localhost:<port>.
//
// Errors throw std::runtime_error with the programs' output, so a fixture's failure reads as the
// cause in the test's report.

#include <filesystem>
#include <string>
#include <vector>

#include "process.hpp"

namespace lanrelay::test {

class kdc {
 public:
  static constexpr const char* realm = "LANRELAY.TEST";

  // Creates the realm and starts the KDC; waits (30 s guard) until it accepts TCP connections.
  kdc();
  ~kdc();
  kdc(const kdc&) = delete;
  kdc& operator=(const kdc&) = delete;

  // Adds `principal` ("alice", "HTTP/localhost") with a random key and writes its keys to a keytab
  // of its own in this directory (written by kadmin.local); returns the keytab's path.
  std::filesystem::path add_principal(const std::string& principal);

  // Gets a ticket-granting ticket for `principal` from `keytab` into a new file credential cache
  // and returns the cache's path (use as KRB5CCNAME=FILE:<path>).
  std::filesystem::path kinit(const std::string& principal, const std::filesystem::path& keytab);

  // "KRB5_CONFIG=<krb5.conf>": what every client of this realm needs in its environment.
  std::vector<std::string> client_environment() const;
  const std::filesystem::path& krb5_conf() const { return conf_; }
  const std::filesystem::path& dir() const { return dir_; }
  unsigned short port() const { return port_; }

 private:
  // Runs a Kerberos administration program to completion; throws with its output on failure.
  void run(std::vector<std::string> argv, const std::string& what);
  bool start_kdc();

  std::filesystem::path dir_;
  std::filesystem::path conf_;  // dir_ / "krb5.conf"
  unsigned short port_ = 0;
  process kdc_;
  int runs_ = 0;
};

}  // namespace lanrelay::test
