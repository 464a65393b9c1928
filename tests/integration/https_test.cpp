// HTTPS on both daemons, with the real lanrelayd and proxyhelperd on 127.0.0.1: the same
// endpoints over TLS, the certificate's fingerprint in /-/status and in the signed catalog, SIGHUP
// picking up a renewed certificate, and pinning refusing any other certificate. (Admin calls from
// another host need a non-loopback address: tests/segment/https_segment_test.cpp.)

#include "free_port.hpp"
#include "relayd_harness.hpp"

#include "lanrelay/base/site_key.hpp"
#include "lanrelay/base/tls_identity.hpp"
#include "lanrelay/upstream/http_client.hpp"

#include <boost/json.hpp>

#include <sys/stat.h>

#include <csignal>
#include <random>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

struct fetched {
  result<fetch_response> response;
  std::string body;
};

fetched get(const std::string& url, std::vector<sha256_digest> pins) {
  fetch_request request;
  request.url = boost::urls::url(url);
  request.tls.pinned_certificates = std::move(pins);
  request.timeouts = {10s, 10s, 10s};
  fetched out;
  out.response = http_fetch_blocking(request, [&](std::span<const std::byte> chunk) -> result<void> {
    out.body.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    return {};
  });
  return out;
}

sha256_digest pin_of(const std::string& hex) {
  auto digest = parse_sha256_hex(hex);
  EXPECT_TRUE(digest) << "not a fingerprint: " << hex;
  return digest.value_or(sha256_digest{});
}

class https_relay : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-https-key.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    keys_ = pattern;
    auto key = site_key::generate();
    ASSERT_TRUE(key);
    ASSERT_TRUE(key->save(keys_ / "site.key"));
    public_ = key->public_key();
    relay_ = std::make_unique<relayd>("[trust]\nsite_key = \"" + (keys_ / "site.key").string() +
                                      "\"\n");
    ASSERT_NE(relay_->https_port(), 0) << relay_->log();
    ASSERT_EQ(relay_->certificate_sha256().size(), 64u) << relay_->log();
  }
  void TearDown() override {
    relay_.reset();
    fs::remove_all(keys_);
  }

  std::string https_url(std::string_view target) const {
    return "https://127.0.0.1:" + std::to_string(relay_->https_port()) + std::string(target);
  }

  catalog signed_catalog() {
    auto res = relay_->request("GET", "/-/catalog.signed");
    EXPECT_EQ(res.message.result(), http::status::ok);
    auto verified = verify_catalog(res.message.body(), public_, std::chrono::system_clock::now());
    EXPECT_TRUE(verified) << verified.error().message();
    return verified ? *verified : catalog{};
  }

  fs::path keys_;
  public_key public_;
  std::unique_ptr<relayd> relay_;
};

TEST_F(https_relay, serves_status_and_items_over_pinned_https) {
  std::string bytes(3 << 20, '\0');
  std::mt19937_64 random(5);
  for (auto& c : bytes) {
    c = static_cast<char>(random());
  }
  relay_->add({item_kind::installer, "agent-x64", "14.0.1"}, bytes);
  const auto pin = pin_of(relay_->certificate_sha256());

  const auto status = get(https_url("/-/status"), {pin});
  ASSERT_TRUE(status.response) << status.response.error().message();
  EXPECT_EQ(status.response->status, 200u);
  const auto https = json::parse(status.body).at("https");
  EXPECT_EQ(https.at("certificate_sha256").as_string(), relay_->certificate_sha256());
  EXPECT_EQ(https.at("port").to_number<int>(), relay_->https_port());

  // Item bytes are encrypted in chunks (no sendfile over TLS): all of them arrive, a range too.
  const auto item = get(https_url("/cache/installer/agent-x64/14.0.1"), {pin});
  ASSERT_TRUE(item.response) << item.response.error().message();
  EXPECT_EQ(item.response->status, 200u);
  EXPECT_TRUE(item.body == bytes);
  EXPECT_EQ(relay_->stat("tls_handshake_failures"), 0u);
}

TEST_F(https_relay, the_signed_catalog_lists_the_certificate_and_is_not_re_signed_per_request) {
  const auto c = signed_catalog();
  ASSERT_EQ(c.tls_certificates.size(), 1u);
  EXPECT_EQ(to_hex(c.tls_certificates[0]), relay_->certificate_sha256());
  // Unauthenticated requests get the cached document: byte for byte the same.
  const auto first = relay_->request("GET", "/-/catalog.signed").message.body();
  const auto second = relay_->request("GET", "/-/catalog.signed").message.body();
  EXPECT_EQ(first, second);
}

TEST_F(https_relay, another_certificate_is_refused_by_the_pin) {
  const auto wrong = get(https_url("/-/healthz"), {sha256_of(std::as_bytes(std::span("x", 1)))});
  ASSERT_FALSE(wrong.response);
  EXPECT_EQ(wrong.response.error(), http_errc::certificate_not_pinned);
  // Nor does an unpinned client trust the self-signed certificate through the system CAs.
  const auto unpinned = get(https_url("/-/healthz"), {});
  ASSERT_FALSE(unpinned.response);
  EXPECT_EQ(unpinned.response.error(), http_errc::certificate_untrusted);
}

TEST_F(https_relay, sighup_picks_up_a_renewed_certificate) {
  const auto old_pin = pin_of(relay_->certificate_sha256());
  const fs::path state = relay_->dir() / "state";
  ASSERT_TRUE(fs::exists(state / "tls.crt"));
  struct stat st {};
  ASSERT_EQ(::stat((state / "tls.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The administrator renews the pair (here: removes it; the relay generates a new one).
  fs::remove(state / "tls.crt");
  fs::remove(state / "tls.key");
  relay_->proc().signal(SIGHUP);
  std::string renewed;
  ASSERT_TRUE(eventually(20s, [&] {
    const auto res = relay_->request("GET", "/-/status");
    if (res.message.result() != http::status::ok) {
      return false;
    }
    renewed = json::parse(res.message.body()).at("https").at("certificate_sha256").as_string();
    return renewed != relay_->certificate_sha256();
  })) << relay_->log();

  const auto fresh = get(https_url("/-/healthz"), {pin_of(renewed)});
  ASSERT_TRUE(fresh.response) << fresh.response.error().message();
  EXPECT_EQ(fresh.body.substr(0, 2), "ok");
  const auto stale = get(https_url("/-/healthz"), {old_pin});
  ASSERT_FALSE(stale.response);
  EXPECT_EQ(stale.response.error(), http_errc::certificate_not_pinned);
  // Agents learn the new certificate from the next catalog.
  const auto c = signed_catalog();
  ASSERT_EQ(c.tls_certificates.size(), 1u);
  EXPECT_EQ(to_hex(c.tls_certificates[0]), renewed);
  EXPECT_NE(relay_->log().find("event=tls_certificate_reloaded"), std::string::npos);
}

TEST(https_relay_settings, https_can_be_turned_off) {
  relayd relay("[https]\nenabled = false\n");
  EXPECT_EQ(relay.https_port(), 0);
  EXPECT_FALSE(fs::exists(relay.dir() / "state" / "tls.key"));
  const auto status = json::parse(relay.request("GET", "/-/status").message.body());
  EXPECT_TRUE(status.at("https").is_null());
}

// proxyhelperd: its own certificate, its monitoring over HTTPS, loopback only by default.
TEST(https_proxyhelperd, serves_its_monitoring_over_https_with_its_own_certificate) {
  char pattern[] = "/tmp/lanrelay-https-proxyhelperd.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const fs::path dir = pattern;
  const fs::path config = dir / "proxyhelperd.toml";
  std::ofstream(config) << "[state]\ndir = \"" << (dir / "state").string() << "\"\n"
                        << "[http]\nlisten = \"127.0.0.1\"\nport = 0\n"
                        << "[https]\nport = 0\n[query]\nipv6 = false\nport = "
                        << free_port(SOCK_DGRAM) << "\n"  // proxyhelperd's query port cannot be 0
                        << "[health]\nprobe_url = \"http://127.0.0.1:9/\"\ninterval = \"1h\"\n"
                        << "[[proxy]]\nurl = \"http://127.0.0.1:9\"\n";
  const fs::path log = dir / "proxyhelperd.log";
  process daemon({PROXYHELPERD_PATH, "--config", config.string()},
                 process::options{.output = log});
  ASSERT_TRUE(eventually(10s, [&] {
    return read_file(log).find("listening on udp") != std::string::npos;
  })) << read_file(log);
  const auto text = read_file(log);
  const auto at = text.find("https on 127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << text;
  const auto line = text.substr(at, text.find('\n', at) - at);
  const auto port = std::stoi(line.substr(std::string_view("https on 127.0.0.1:").size()));
  const auto fingerprint = line.substr(line.find("sha256 ") + 7);
  EXPECT_TRUE(fs::exists(dir / "state" / "proxyhelper-tls.crt"));
  EXPECT_TRUE(fs::exists(dir / "state" / "proxyhelper-tls.key"));

  const auto url = "https://127.0.0.1:" + std::to_string(port);
  const auto status = get(url + "/-/status", {pin_of(fingerprint)});
  ASSERT_TRUE(status.response) << status.response.error().message();
  EXPECT_EQ(status.response->status, 200u);
  EXPECT_EQ(json::parse(status.body).at("https").at("certificate_sha256").as_string(), fingerprint);
  const auto pac = get(url + "/proxy.pac", {pin_of(fingerprint)});
  ASSERT_TRUE(pac.response);
  EXPECT_EQ(pac.response->status, 200u);
  const auto wrong = get(url + "/-/status", {sha256_of(std::as_bytes(std::span("y", 1)))});
  ASSERT_FALSE(wrong.response);
  EXPECT_EQ(wrong.response.error(), http_errc::certificate_not_pinned);
  daemon.kill();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lanrelay::test
