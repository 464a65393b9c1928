#include "squid_fixture.hpp"

#include "au_upstream.hpp"

#include <boost/url/url.hpp>

#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <stdexcept>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* squid_path = "/usr/sbin/squid";
constexpr const char* helpers = "/usr/lib/squid/";
constexpr const char* openssl_path = "/usr/bin/openssl";

bool ipv6_loopback_works() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// The proxy user squid switches to when started as root; its files must be readable by it.
void give_to_proxy_user(const fs::path& path) {
  if (::geteuid() != 0) {
    return;
  }
  if (const passwd* pw = ::getpwnam("proxy")) {
    [[maybe_unused]] const int ignored = ::chown(path.c_str(), pw->pw_uid, pw->pw_gid);
  }
}

// An MD5-crypt hash of `secret` for the htpasswd file (basic_ncsa_auth reads crypt(3) hashes).
std::string md5_crypt(const fs::path& dir, const std::string& secret) {
  const fs::path out = dir / "openssl.out";
  process p({openssl_path, "passwd", "-1", secret}, {.output = out});
  p.wait_for(60s);
  std::string hash = read_file(out);
  while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r')) {
    hash.pop_back();
  }
  fs::remove(out);
  if (!hash.starts_with("$1$")) {
    throw std::runtime_error("squid: openssl passwd -1 failed: " + hash);
  }
  return hash;
}

std::atomic<unsigned> instances{0};

// Runs openssl with `args` (60 s guard); throws with its output when it fails.
void run_openssl(const fs::path& dir, std::vector<std::string> args) {
  const fs::path out = dir / "openssl.out";
  args.insert(args.begin(), openssl_path);
  process p(args, {.output = out});
  const auto status = p.wait_for(60s);
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    throw std::runtime_error("squid: openssl " + args[1] + " failed: " + read_file(out));
  }
  fs::remove(out);
}

// A self-signed CA certificate and its key (P-256), valid for two days.
void make_ca(const fs::path& dir, const std::string& name, const std::string& common_name) {
  run_openssl(dir, {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", (dir / (name + ".key")).string(), "-out",
                    (dir / (name + ".pem")).string(), "-days", "2", "-subj", "/CN=" + common_name,
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign"});
}

}  // namespace

squid::squid(proxy_auth_scheme scheme, kdc* realm, listen ports)
    : scheme_(scheme), realm_(realm), ports_(ports) {
  if (scheme_ == proxy_auth_scheme::negotiate && realm_ == nullptr) {
    throw std::invalid_argument("squid: negotiate needs a kdc");
  }
  char pattern[] = "/tmp/lanrelay-squid.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    throw std::runtime_error("squid: mkdtemp failed");
  }
  dir_ = pattern;
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  give_to_proxy_user(dir_);
  service_ = "lanrelaysquid" + std::to_string(::getpid()) + "x" + std::to_string(++instances);
  ipv6_ = ipv6_loopback_works();

  const std::string user_name = user;
  switch (scheme_) {
    case proxy_auth_scheme::basic:
      spew(dir_ / "htpasswd", user_name + ":" + md5_crypt(dir_, password) + "\n");
      break;
    case proxy_auth_scheme::digest:
      spew(dir_ / "digest_passwd", user_name + ":" + password + "\n");
      break;
    case proxy_auth_scheme::ntlm:
      break;
    case proxy_auth_scheme::negotiate: {
      const auto service_keytab = realm_->add_principal("HTTP/localhost");
      client_keytab_ = realm_->add_principal(user);
      wrong_keytab_ = realm_->add_principal(wrong_user);
      fs::copy_file(service_keytab, dir_ / "HTTP.keytab");
      give_to_proxy_user(dir_ / "HTTP.keytab");
      fs::copy_file(realm_->krb5_conf(), dir_ / "krb5.conf");
      break;
    }
  }
  if (ports_ == listen::http_and_https) {
    make_certificates();
  }
  for (const char* file : {"htpasswd", "digest_passwd", "krb5.conf", "proxy.pem", "proxy.key"}) {
    if (fs::exists(dir_ / file)) {
      give_to_proxy_user(dir_ / file);
    }
  }
  for (int tries = 0; tries < 3; ++tries) {
    if (start()) {
      return;
    }
  }
  const std::string log = read_file(dir_ / "squid.out") + read_file(dir_ / "cache.log");
  stop();
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
  throw std::runtime_error("squid: did not start: " + log);
}

squid::~squid() {
  stop();
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

// The test CA (ca.pem), the proxy's certificate it signs (proxy.pem, proxy.key: localhost,
// 127.0.0.1 and ::1) and a second CA that signs nothing (other-ca.pem).
void squid::make_certificates() {
  make_ca(dir_, "ca", "lanrelay test proxy CA");
  make_ca(dir_, "other-ca", "lanrelay test other CA");
  run_openssl(dir_, {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", (dir_ / "proxy.key").string(), "-out",
                     (dir_ / "proxy.csr").string(), "-subj", "/CN=localhost"});
  spew(dir_ / "proxy.ext",
       "basicConstraints=critical,CA:FALSE\n"
       "keyUsage=critical,digitalSignature\n"
       "extendedKeyUsage=serverAuth\n"
       "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n");
  run_openssl(dir_, {"x509", "-req", "-in", (dir_ / "proxy.csr").string(), "-CA",
                     (dir_ / "ca.pem").string(), "-CAkey", (dir_ / "ca.key").string(),
                     "-CAcreateserial", "-days", "2", "-extfile", (dir_ / "proxy.ext").string(),
                     "-out", (dir_ / "proxy.pem").string()});
  ca_file_ = dir_ / "ca.pem";
  other_ca_file_ = dir_ / "other-ca.pem";
}

bool squid::start() {
  port_ = free_port();
  const std::string port = std::to_string(port_);
  const std::string realm_name = realm_ != nullptr ? kdc::realm : "";
  std::ostringstream conf;
  conf << "http_port 127.0.0.1:" << port << "\n";
  if (ipv6_) {
    conf << "http_port [::1]:" << port << "\n";
  }
  if (ports_ == listen::http_and_https) {
    do {
      tls_port_ = free_port();
    } while (tls_port_ == port_);
    const std::string tls = " tls-cert=" + (dir_ / "proxy.pem").string() +
                            " tls-key=" + (dir_ / "proxy.key").string() + "\n";
    conf << "https_port 127.0.0.1:" << tls_port_ << tls;
    if (ipv6_) {
      conf << "https_port [::1]:" << tls_port_ << tls;
    }
  }
  conf << "pid_filename " << (dir_ / "squid.pid").string() << "\n"
       << "cache_log " << (dir_ / "cache.log").string() << "\n"
       << "logformat lanrelay %rm %ru %>Hs %un\n"
       << "access_log stdio:" << (dir_ / "access.log").string() << " lanrelay\n"
       << "cache_store_log none\n"
       << "cache deny all\n"
       << "coredump_dir " << dir_.string() << "\n"
       << "pinger_enable off\n"
       << "netdb_filename none\n"
       << "shutdown_lifetime 0 seconds\n"
       << "tcp_outgoing_address " << outgoing_address << "\n";
  std::string allowed;  // a regular expression over the user name squid's helper reports
  switch (scheme_) {
    case proxy_auth_scheme::basic:
      conf << "auth_param basic program " << helpers << "basic_ncsa_auth "
           << (dir_ / "htpasswd").string() << "\n"
           << "auth_param basic realm lanrelay-test\n"
           << "auth_param basic children 4 startup=1 idle=1\n";
      allowed = std::string("^") + user + "$";
      break;
    case proxy_auth_scheme::digest:
      conf << "auth_param digest program " << helpers << "digest_file_auth "
           << (dir_ / "digest_passwd").string() << "\n"
           << "auth_param digest realm lanrelay-test\n"
           << "auth_param digest children 4 startup=1 idle=1\n";
      allowed = std::string("^") + user + "$";
      break;
    case proxy_auth_scheme::ntlm:
      conf << "auth_param ntlm program " << helpers << "ntlm_fake_auth\n"
           << "auth_param ntlm children 4 startup=1 idle=1\n";
      // ntlm_fake_auth reports the name with stray bytes around it ("a\\alicew" for alice).
      allowed = user;
      break;
    case proxy_auth_scheme::negotiate:
      conf << "auth_param negotiate program " << helpers << "negotiate_kerberos_auth -k "
           << (dir_ / "HTTP.keytab").string() << " -s HTTP/localhost@" << realm_name << "\n"
           << "auth_param negotiate children 4 startup=1 idle=1\n";
      allowed = std::string("^") + user + "@" + realm_name + "$";
      break;
  }
  conf << "acl authenticated proxy_auth REQUIRED\n"
       << "acl the_user proxy_auth_regex " << allowed << "\n"
       // Both denials end on a proxy_auth ACL: squid answers 407 (log in again), not 403.
       << "http_access deny !authenticated\n"
       << "http_access deny !the_user\n"
       << "http_access allow the_user\n"
       << "http_access deny all\n";
  spew(dir_ / "squid.conf", conf.str());
  for (const char* file : {"access.log", "cache.log"}) {
    spew(dir_ / file, "");
    give_to_proxy_user(dir_ / file);
  }
  std::vector<std::string> environment = {"KRB5RCACHETYPE=none"};
  if (realm_ != nullptr) {
    environment.push_back("KRB5_CONFIG=" + (dir_ / "krb5.conf").string());
  }
  proc_ = process({squid_path, "-N", "-n", service_, "-f", (dir_ / "squid.conf").string()},
                  {.output = dir_ / "squid.out", .environment = environment});
  bool exited = false;
  const bool up = eventually(30s, [&] {
    if (proc_.wait_for(0ms)) {
      exited = true;
      return true;
    }
    return can_connect(port_) && (ports_ == listen::http || can_connect(tls_port_));
  });
  if (up && !exited) {
    return true;
  }
  stop();
  return false;
}

void squid::stop() {
  if (proc_.running()) {
    proc_.signal(SIGTERM);
    if (!proc_.wait_for(30s)) {
      proc_.kill();
    }
    proc_.kill();  // helpers left in the process group
  }
  // squid keeps its shared memory segments in /dev/shm under its service name.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/dev/shm", ec)) {
    if (entry.path().filename().string().starts_with(service_ + "-")) {
      fs::remove(entry.path(), ec);
    }
  }
}

std::string squid::host_port() const { return "localhost:" + std::to_string(port_); }

std::string squid::url() const { return "http://" + host_port(); }

std::string squid::url_with(std::string_view user_name, std::string_view user_password) const {
  boost::urls::url u(url());
  u.set_user(user_name);
  u.set_password(user_password);
  return std::string(u.buffer());
}

std::string squid::tls_host_port() const { return "localhost:" + std::to_string(tls_port_); }

std::string squid::tls_url() const { return "https://" + tls_host_port(); }

std::string squid::tls_url_with(std::string_view user_name,
                                std::string_view user_password) const {
  boost::urls::url u(tls_url());
  u.set_user(user_name);
  u.set_password(user_password);
  return std::string(u.buffer());
}

std::string squid::wrong_user_name() const {
  return scheme_ == proxy_auth_scheme::ntlm ? wrong_user : user;
}

std::vector<std::string> squid::client_environment() const {
  return realm_ != nullptr ? realm_->client_environment() : std::vector<std::string>{};
}

std::vector<squid_request> squid::log() const {
  std::vector<squid_request> out;
  std::istringstream in(read_file(dir_ / "access.log"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    squid_request r;
    std::string status;
    // "error:transaction-end-before-headers": a connection closed before a request (the
    // readiness probe's), not a request.
    if (fields >> r.method >> r.url >> status >> r.user && !r.url.starts_with("error:")) {
      r.status = static_cast<unsigned>(std::stoul(status));
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace lanrelay::test

namespace lanrelay::test {

std::vector<squid_request> squid::log_once(
    const std::function<bool(const squid_request&)>& wanted) const {
  std::vector<squid_request> lines;
  eventually(30s, [&] {
    lines = log();
    return std::any_of(lines.begin(), lines.end(), wanted);
  });
  return lines;
}

}  // namespace lanrelay::test
