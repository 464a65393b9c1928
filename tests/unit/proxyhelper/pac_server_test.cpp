#include "lanrelay/proxyhelper/pac.hpp"
#include "lanrelay/proxyhelper/pac_server.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace lanrelay::proxyhelper {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

class pac_server_test : public testing::Test {
 protected:
  pac_server_test() {
    config_.proxies = {{"http://10.77.0.9:3128", 20, false, {"*.corp.example"}},
                       {"http://10.77.0.10:8080", 10, false, {}},
                       {"http://10.77.0.11:3128", 30, false, {}}};
    config_.check_interval = std::chrono::seconds(15);
    health_.emplace(config_.proxies);
    reachability ok;
    ok.reachable = true;
    ok.status = 200;
    health_->record(0, ok);
    health_->record(1, ok);
    reachability down;
    down.error = boost::system::errc::make_error_code(boost::system::errc::connection_refused);
    health_->record(2, down);
  }

  http::response<http::string_body> get(std::string target,
                                        http::verb method = http::verb::get,
                                        const char* client = "127.0.0.1", bool secure = false) {
    http::request<http::empty_body> request(method, target, 11);
    return handle_request(request, pac_context{config_, *health_, counters_, "lanrelay-ed25519:x"},
                          request_origin{boost::asio::ip::make_address(client), secure});
  }

  proxyhelper_config config_;
  std::optional<proxy_health> health_;
  proxyhelper_counters counters_;
};

TEST_F(pac_server_test, serves_the_healthy_proxies_best_first_as_pac_and_wpad) {
  for (const auto* target : {"/proxy.pac", "/wpad.dat"}) {
    const auto response = get(target);
    EXPECT_EQ(response.result(), http::status::ok);
    EXPECT_EQ(response[http::field::content_type], pac_content_type);
    EXPECT_EQ(response[http::field::cache_control], "max-age=15");
    const auto& body = response.body();
    const auto first = body.find("PROXY 10.77.0.10:8080");
    const auto second = body.find("PROXY 10.77.0.9:3128");
    ASSERT_NE(first, std::string::npos) << body;
    ASSERT_NE(second, std::string::npos) << body;
    EXPECT_LT(first, second) << body;
    EXPECT_EQ(body.find("10.77.0.11"), std::string::npos) << "an unhealthy proxy is advertised";
  }
  EXPECT_EQ(counters_.pac_served, 2u);
}

TEST_F(pac_server_test, head_has_the_length_of_get_and_no_body) {
  const auto head = get("/proxy.pac", http::verb::head);
  EXPECT_EQ(head.result(), http::status::ok);
  EXPECT_TRUE(head.body().empty());
  EXPECT_EQ(head[http::field::content_length], std::to_string(get("/proxy.pac").body().size()));
}

TEST_F(pac_server_test, redirects_to_the_site_pac_url_when_configured) {
  config_.pac_url = "http://intranet.corp.example/proxy.pac";
  const auto response = get("/wpad.dat");
  EXPECT_EQ(response.result(), http::status::found);
  EXPECT_EQ(response[http::field::location], config_.pac_url);
}

TEST_F(pac_server_test, health_stats_and_errors) {
  EXPECT_EQ(get("/-/healthz").body(), "ok\n");
  const auto stats = json::parse(get("/-/stats").body()).as_object();
  EXPECT_EQ(stats.at("public_key").as_string(), "lanrelay-ed25519:x");
  const auto& proxies = stats.at("proxies").as_array();
  ASSERT_EQ(proxies.size(), 3u);
  EXPECT_FALSE(proxies[2].as_object().at("healthy").as_bool());
  EXPECT_NE(std::string(proxies[2].as_object().at("last_result").as_string()).find("refused"),
            std::string::npos);
  EXPECT_EQ(get("/other").result(), http::status::not_found);
  EXPECT_EQ(get("/proxy.pac", http::verb::post).result(), http::status::method_not_allowed);
}

TEST_F(pac_server_test, monitoring_answers_loopback_and_read_networks_only) {
  for (const auto* target : {"/", "/-/status", "/-/stats", "/-/metrics"}) {
    const auto refused = get(target, http::verb::get, "10.77.0.50", true);
    EXPECT_EQ(refused.result(), http::status::forbidden) << target;
    EXPECT_NE(refused.body().find("read_networks"), std::string::npos) << target;
    EXPECT_NE(get(target, http::verb::get, "::1").result(), http::status::forbidden) << target;
  }
  // PAC, WPAD and health stay open to the segment.
  for (const auto* target : {"/proxy.pac", "/wpad.dat", "/-/healthz"}) {
    EXPECT_EQ(get(target, http::verb::get, "10.77.0.50").result(), http::status::ok) << target;
  }
  config_.read_networks = {"10.77.0.0/16"};
  EXPECT_EQ(get("/-/stats", http::verb::get, "10.77.0.50").result(), http::status::ok);
  EXPECT_EQ(get("/-/stats", http::verb::get, "192.0.2.1").result(), http::status::forbidden);
  // An unknown peer never reads.
  http::request<http::empty_body> request(http::verb::get, "/-/stats", 11);
  EXPECT_EQ(handle_request(request, pac_context{config_, *health_, counters_, "k"}, {}).result(),
            http::status::forbidden);
}

TEST(pac, without_a_healthy_proxy_everything_goes_direct) {
  const auto script = make_pac({});
  EXPECT_NE(script.find("\"DIRECT\""), std::string::npos);
  EXPECT_EQ(script.find("use.push"), std::string::npos);
}

TEST(proxy_health, a_proxy_is_advertised_only_after_its_latest_check_passed) {
  proxy_health health({{"http://a:1", 5, false, {}}, {"http://b:1", 1, false, {}}});
  EXPECT_TRUE(health.healthy().empty());  // not checked yet
  reachability ok;
  ok.reachable = true;
  ok.status = 200;
  EXPECT_TRUE(health.record(0, ok));
  EXPECT_TRUE(health.record(1, ok));
  ASSERT_EQ(health.healthy().size(), 2u);
  EXPECT_EQ(health.healthy()[0].url, "http://b:1");  // priority 1 before 5
  reachability failed;
  failed.status = 502;
  EXPECT_TRUE(health.record(1, failed));
  ASSERT_EQ(health.healthy().size(), 1u);
  EXPECT_EQ(health.healthy()[0].url, "http://a:1");
  EXPECT_FALSE(health.record(1, failed));
  EXPECT_TRUE(health.record(1, ok));
  EXPECT_EQ(health.healthy()[0].url, "http://b:1");
}

}  // namespace
}  // namespace lanrelay::proxyhelper
