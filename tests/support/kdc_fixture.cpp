#include "kdc_fixture.hpp"

#include "au_upstream.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kdb5_util_path = "/usr/sbin/kdb5_util";
constexpr const char* kadmin_local_path = "/usr/sbin/kadmin.local";
constexpr const char* krb5kdc_path = "/usr/sbin/krb5kdc";
constexpr const char* kinit_path = "/usr/bin/kinit";

}  // namespace

kdc::kdc() {
  char pattern[] = "/tmp/lanrelay-kdc.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    throw std::runtime_error("kdc: mkdtemp failed");
  }
  dir_ = pattern;
  conf_ = dir_ / "krb5.conf";
  // Both files name the port: a port taken by someone else between free_port() and the KDC's
  // bind means new files and another start. The database is created once.
  spew(dir_ / "kadm5.acl", "");
  for (int tries = 0; tries < 3; ++tries) {
    port_ = free_port();
    const std::string port = std::to_string(port_);
    spew(conf_, "[libdefaults]\n"
                "  default_realm = " + std::string(realm) + "\n"
                "  dns_lookup_kdc = false\n"
                "  dns_lookup_realm = false\n"
                "  dns_canonicalize_hostname = false\n"
                "  rdns = false\n"
                "  udp_preference_limit = 1\n"
                "[realms]\n"
                "  " + realm + " = {\n"
                "    kdc = 127.0.0.1:" + port + "\n"
                "  }\n"
                "[domain_realm]\n"
                "  localhost = " + realm + "\n");
    spew(dir_ / "kdc.conf", "[kdcdefaults]\n"
                            "  kdc_listen = 127.0.0.1:" + port + "\n"
                            "  kdc_tcp_listen = 127.0.0.1:" + port + "\n"
                            "[realms]\n"
                            "  " + realm + " = {\n"
                            "    database_name = " + (dir_ / "principal").string() + "\n"
                            "    key_stash_file = " + (dir_ / "stash").string() + "\n"
                            "    acl_file = " + (dir_ / "kadm5.acl").string() + "\n"
                            "    supported_enctypes = aes256-cts-hmac-sha1-96:normal\n"
                            "  }\n"
                            "[logging]\n"
                            "  kdc = FILE:" + (dir_ / "kdc.log").string() + "\n");
    if (tries == 0) {
      run({kdb5_util_path, "create", "-s", "-r", realm, "-P", "lanrelay-test-master-key"},
          "kdb5_util create");
    }
    if (start_kdc()) {
      return;
    }
  }
  const std::string log = read_file(dir_ / "krb5kdc.out") + read_file(dir_ / "kdc.log");
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
  throw std::runtime_error("kdc: krb5kdc did not start: " + log);
}

kdc::~kdc() {
  kdc_.kill();
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

std::vector<std::string> kdc::client_environment() const {
  return {"KRB5_CONFIG=" + conf_.string()};
}

void kdc::run(std::vector<std::string> argv, const std::string& what) {
  const fs::path out = dir_ / ("admin-" + std::to_string(++runs_) + ".out");
  process p(std::move(argv),
            {.output = out,
             .environment = {"KRB5_CONFIG=" + conf_.string(),
                             "KRB5_KDC_PROFILE=" + (dir_ / "kdc.conf").string()}});
  const auto status = p.wait_for(60s);
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    throw std::runtime_error("kdc: " + what + " failed: " + read_file(out));
  }
}

bool kdc::start_kdc() {
  kdc_.kill();
  kdc_ = process({krb5kdc_path, "-n", "-r", realm},
                 {.output = dir_ / "krb5kdc.out",
                  .environment = {"KRB5_CONFIG=" + conf_.string(),
                                  "KRB5_KDC_PROFILE=" + (dir_ / "kdc.conf").string()}});
  bool exited = false;
  const bool up = eventually(30s, [&] {
    if (kdc_.wait_for(0ms)) {
      exited = true;
      return true;
    }
    return can_connect(port_);
  });
  return up && !exited;
}

fs::path kdc::add_principal(const std::string& principal) {
  std::string file = principal;
  for (auto& c : file) {
    if (c == '/' || c == '@') {
      c = '_';
    }
  }
  const fs::path keytab = dir_ / (file + ".keytab");
  run({kadmin_local_path, "-q", "addprinc -randkey " + principal}, "addprinc " + principal);
  run({kadmin_local_path, "-q", "ktadd -k " + keytab.string() + " " + principal},
      "ktadd " + principal);
  if (!fs::exists(keytab)) {
    throw std::runtime_error("kdc: kadmin.local wrote no keytab for " + principal);
  }
  return keytab;
}

fs::path kdc::kinit(const std::string& principal, const fs::path& keytab) {
  const fs::path cache = dir_ / ("ccache-" + std::to_string(runs_ + 1));
  const fs::path out = dir_ / ("kinit-" + std::to_string(++runs_) + ".out");
  process p({kinit_path, "-k", "-t", keytab.string(), principal},
            {.output = out,
             .environment = {"KRB5_CONFIG=" + conf_.string(), "KRB5CCNAME=FILE:" + cache.string()}});
  const auto status = p.wait_for(60s);
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    throw std::runtime_error("kdc: kinit " + principal + " failed: " + read_file(out));
  }
  return cache;
}

}  // namespace lanrelay::test
