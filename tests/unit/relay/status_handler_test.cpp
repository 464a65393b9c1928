// The monitoring and admin endpoints of the request handler, without sockets: the status page,
// /-/status, /-/metrics, /-/log-level and the authorization in front of them.

#include "lanrelay/relay/handler.hpp"
#include "lanrelay/relay/monitor.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <filesystem>
#include <string>

namespace lanrelay::relay {
namespace {

namespace http = boost::beast::http;
namespace fs = std::filesystem;

const std::string token = "0123456789abcdef-token";

class status_handler : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-status.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto store = content_store::open({dir_ / "cache", 0});
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    add({item_kind::installer, "agent-x64", "14.0.1234"}, std::string(3000, 'i'));
    add({item_kind::pattern, "vsapi", "16.679.00"}, "pattern bytes");
    monitor_ = std::make_unique<monitor>(*store_, counters_, slots_, "relay");
    make_handler({});
    saved_level_ = spdlog::get_level();
  }
  void TearDown() override {
    spdlog::set_level(saved_level_);
    handler_.reset();
    monitor_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  void make_handler(std::vector<std::string> networks, std::string admin_token = token) {
    auto policy =
        access_policy::from_config(admin_settings{std::move(admin_token), std::move(networks)});
    ASSERT_TRUE(policy);
    handler_ = std::make_unique<request_handler>(
        *store_, slots_, counters_,
        handler_settings{std::chrono::seconds(5), nullptr, *policy, monitor_.get()});
  }

  void add(item_key key, std::string_view bytes) {
    auto writer = store_->begin_add(std::move(key));
    ASSERT_TRUE(writer);
    ASSERT_TRUE(writer->write(std::as_bytes(std::span(bytes.data(), bytes.size()))));
    ASSERT_TRUE(writer->commit(bytes.size(), std::nullopt));
  }

  static http::request_header<> request(std::string_view target,
                                        http::verb method = http::verb::get) {
    http::request_header<> h;
    h.method(method);
    h.target(target);
    h.version(11);
    return h;
  }

  small_response get(std::string_view target, const char* client = "127.0.0.1") {
    auto plan = handler_->handle(request(target), {boost::asio::ip::make_address(client), {}});
    EXPECT_TRUE(std::holds_alternative<small_response>(plan));
    return std::get<small_response>(std::move(plan));
  }

  small_response put_level(std::string_view body, std::string_view authorization) {
    auto req = request("/-/log-level", http::verb::put);
    if (!authorization.empty()) {
      req.set(http::field::authorization, authorization);
    }
    auto plan = handler_->handle(req, {boost::asio::ip::make_address("127.0.0.1"), body});
    EXPECT_TRUE(std::holds_alternative<small_response>(plan));
    return std::get<small_response>(std::move(plan));
  }

  fs::path dir_;
  std::unique_ptr<content_store> store_;
  slot_pool slots_{3};
  relay_counters counters_;
  std::unique_ptr<monitor> monitor_;
  std::unique_ptr<request_handler> handler_;
  spdlog::level::level_enum saved_level_ = spdlog::level::info;
};

TEST_F(status_handler, status_json_lists_the_cache_transfers_peers_and_traffic) {
  counters_.bytes_served = 5000;
  counters_.bytes_fetched_upstream = 1200;
  auto running = monitor_->transfers().begin("10.0.0.9", "/cache/installer/agent-x64/14.0.1234",
                                             0, 3000);
  running.add_bytes(1024);

  const auto res = get("/-/status");
  ASSERT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  const auto json = boost::json::parse(res.body()).as_object();
  EXPECT_EQ(json.at("role").as_string(), "relay");
  const auto& items = json.at("cache").at("items").as_array();
  ASSERT_EQ(items.size(), 2U);
  EXPECT_EQ(items[0].at("kind").as_string(), "installer");
  EXPECT_EQ(items[0].at("name").as_string(), "agent-x64");
  EXPECT_EQ(items[0].at("version").as_string(), "14.0.1234");
  EXPECT_EQ(items[1].at("version").as_string(), "1667900");
  EXPECT_EQ(json.at("cache").at("bytes").to_number<std::uint64_t>(), 3000U + 13U);
  EXPECT_FALSE(json.at("mirrors").at("configured").as_bool());
  const auto& list = json.at("transfers").at("list").as_array();
  ASSERT_EQ(list.size(), 1U);
  EXPECT_EQ(list[0].at("client").as_string(), "10.0.0.9");
  EXPECT_EQ(list[0].at("bytes_sent").to_number<std::uint64_t>(), 1024U);
  EXPECT_EQ(json.at("top_peers").as_array().at(0).at("bytes").to_number<std::uint64_t>(), 1024U);
  const auto& traffic = json.at("traffic").as_object();
  EXPECT_EQ(traffic.at("bucket_seconds").to_number<std::int64_t>(), 300);
  ASSERT_EQ(traffic.at("served").as_array().size(), traffic_history::bucket_count);
  EXPECT_EQ(traffic.at("served").as_array().back().to_number<std::uint64_t>(), 5000U);
  EXPECT_EQ(traffic.at("upstream").as_array().back().to_number<std::uint64_t>(), 1200U);
  EXPECT_EQ(json.at("totals").at("bytes_spared").to_number<std::uint64_t>(), 3800U);
}

TEST_F(status_handler, mirror_sources_come_from_the_daemons_provider) {
  const auto succeeded = std::chrono::system_clock::now() - std::chrono::seconds(90);
  monitor_->set_mirror_provider([succeeded] {
    mirror_report m;
    m.name = "au<main>";
    m.upstream = "https://au.example.com/activeupdate/?a=1&b=\"2\"";
    m.status.has_snapshot = true;
    m.status.generation = 7;
    m.status.last_success = succeeded;
    m.status.last_error = "upstream said <503> & 'gave up'";
    m.syncs_ok = 3;
    m.syncs_failed = 1;
    return std::vector<mirror_report>{m};
  });
  const auto json = boost::json::parse(get("/-/status").body()).as_object();
  ASSERT_TRUE(json.at("mirrors").at("configured").as_bool());
  const auto& source = json.at("mirrors").at("sources").as_array().at(0);
  EXPECT_EQ(source.at("name").as_string(), "au<main>");
  EXPECT_EQ(source.at("generation").to_number<std::uint64_t>(), 7U);
  EXPECT_GE(source.at("last_success_age_seconds").to_number<std::int64_t>(), 89);
  EXPECT_EQ(source.at("syncs").at("failed").to_number<std::uint64_t>(), 1U);

  const auto page = get("/").body();
  EXPECT_NE(page.find("au&lt;main&gt;"), std::string::npos);
  EXPECT_NE(page.find("?a=1&amp;b=&quot;2&quot;"), std::string::npos);
  EXPECT_NE(page.find("upstream said &lt;503&gt; &amp; &#39;gave up&#39;"), std::string::npos);
  EXPECT_EQ(page.find("<main>"), std::string::npos);
  EXPECT_EQ(page.find("<503>"), std::string::npos);

  const auto metrics = get("/-/metrics").body();
  EXPECT_NE(metrics.find("lanrelay_mirror_syncs_total{source=\"au<main>\",result=\"ok\"} 3\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("lanrelay_mirror_last_success_age_seconds{source=\"au<main>\"} 9"),
            std::string::npos);
}

TEST_F(status_handler, status_page_is_self_contained_html_with_the_chart) {
  counters_.bytes_served = 2 << 20;
  const auto res = get("/");
  ASSERT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "text/html; charset=utf-8");
  EXPECT_NE(res["Content-Security-Policy"].find("default-src 'none'"), std::string::npos);
  const auto& page = res.body();
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0U);
  EXPECT_NE(page.find("<svg id=\"traffic-chart\""), std::string::npos);
  EXPECT_NE(page.find("class=\"served\""), std::string::npos);
  EXPECT_NE(page.find("agent-x64"), std::string::npos);
  EXPECT_NE(page.find("14.0.1234"), std::string::npos);
  EXPECT_NE(page.find("No mirror source is configured."), std::string::npos);
  EXPECT_NE(page.find("No transfer is running."), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.find("href=\"http"), std::string::npos);
  EXPECT_EQ(page.find("@import"), std::string::npos);

  const auto head = handler_->handle(request("/", http::verb::head),
                                     {boost::asio::ip::make_address("127.0.0.1"), {}});
  const auto& head_res = std::get<small_response>(head);
  EXPECT_TRUE(head_res.body().empty());
  EXPECT_NE(head_res[http::field::content_length], "0");
}

TEST_F(status_handler, metrics_read_the_relays_counters) {
  counters_.requests = 12;
  counters_.bytes_served = 4096;
  counters_.discovery.queries = 5;
  counters_.discovery.malformed = 2;
  counters_.discovery.offers_sent = 4;
  counters_.discovery.not_held = 1;
  counters_.discovery.digest_mismatches = 1;
  auto slot = slots_.try_acquire();
  ASSERT_TRUE(slot);
  const auto res = get("/-/metrics");
  ASSERT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  const auto& text = res.body();
  for (const std::string line :
       {"lanrelay_http_requests_total 13\n",  // this request counts too
        "lanrelay_served_bytes_total 4096\n", "lanrelay_discovery_queries_received_total 7\n",
        "lanrelay_discovery_queries_answered_total 4\n",
        "lanrelay_discovery_queries_dropped_total{reason=\"malformed\"} 2\n",
        "lanrelay_discovery_queries_dropped_total{reason=\"not_held\"} 1\n",
        "lanrelay_hash_mismatches_total{where=\"discovery_query\"} 1\n",
        "lanrelay_transfers_running 1\n", "lanrelay_transfer_slots 3\n", "lanrelay_cache_items 2\n",
        "lanrelay_cache_bytes 3013\n", "lanrelay_wan_spared_bytes 4096\n",
        "# TYPE lanrelay_served_bytes_total counter\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST_F(status_handler, read_networks_limit_monitoring_but_never_items_or_health) {
  make_handler({"10.0.0.0/8"});
  for (const char* target : {"/", "/-/status", "/-/metrics", "/-/stats", "/-/log-level"}) {
    EXPECT_EQ(get(target, "192.168.0.9").result(), http::status::forbidden) << target;
    EXPECT_EQ(get(target, "10.9.9.9").result(), http::status::ok) << target;
  }
  EXPECT_EQ(get("/-/healthz", "192.168.0.9").result(), http::status::ok);
  EXPECT_EQ(get("/-/catalog", "192.168.0.9").result(), http::status::ok);
  auto item = handler_->handle(request("/cache/pattern/vsapi/1667900"),
                               {boost::asio::ip::make_address("192.168.0.9"), {}});
  EXPECT_TRUE(std::holds_alternative<file_transfer>(item));
}

TEST_F(status_handler, log_level_changes_only_with_the_token) {
  spdlog::set_level(spdlog::level::info);
  EXPECT_EQ(get("/-/log-level").body(), "info\n");

  const auto anonymous = put_level("debug", "");
  EXPECT_EQ(anonymous.result(), http::status::unauthorized);
  EXPECT_EQ(anonymous[http::field::www_authenticate], "Bearer realm=\"lanrelay\"");
  EXPECT_EQ(put_level("debug", "Bearer not-the-token-at-all").result(), http::status::unauthorized);
  EXPECT_EQ(spdlog::get_level(), spdlog::level::info);

  const auto bad = put_level("loud", "Bearer " + token);
  EXPECT_EQ(bad.result(), http::status::bad_request);
  EXPECT_NE(bad.body().find("not a log level"), std::string::npos);

  const auto ok = put_level("debug\n", "Bearer " + token);
  EXPECT_EQ(ok.result(), http::status::ok);
  EXPECT_EQ(spdlog::get_level(), spdlog::level::debug);
  EXPECT_EQ(get("/-/log-level").body(), "debug\n");

  auto post = request("/-/log-level", http::verb::post);
  const auto not_allowed = std::get<small_response>(handler_->handle(post));
  EXPECT_EQ(not_allowed.result(), http::status::method_not_allowed);
  EXPECT_EQ(not_allowed[http::field::allow], "GET, HEAD, PUT");
  auto put_status = request("/-/status", http::verb::put);
  EXPECT_EQ(std::get<small_response>(handler_->handle(put_status)).result(),
            http::status::method_not_allowed);
}

TEST_F(status_handler, without_a_token_admin_endpoints_say_so) {
  make_handler({}, "");
  const auto res = put_level("debug", "Bearer " + token);
  EXPECT_EQ(res.result(), http::status::forbidden);
  EXPECT_NE(res.body().find("no [admin] token is configured"), std::string::npos);
}

TEST_F(status_handler, admin_from_another_host_needs_https_and_monitoring_needs_a_listed_network) {
  make_handler({"10.0.0.0/8"});
  auto req = request("/-/log-level", http::verb::put);
  req.set(http::field::authorization, "Bearer " + token);
  const auto lan = boost::asio::ip::make_address("10.1.2.3");
  request_context plain{lan, "info"};
  const auto refused = std::get<small_response>(handler_->handle(req, plain));
  EXPECT_EQ(refused.result(), http::status::forbidden);
  EXPECT_NE(refused.body().find("HTTPS only"), std::string::npos);
  request_context secure{lan, "info"};
  secure.secure = true;
  EXPECT_EQ(std::get<small_response>(handler_->handle(req, secure)).result(), http::status::ok);

  // Nothing listed: the LAN does not read monitoring, even over HTTPS; loopback does.
  make_handler({});
  for (const char* target : {"/", "/-/status", "/-/metrics", "/-/stats", "/-/mirror"}) {
    request_context over_https{lan, {}};
    over_https.secure = true;
    const auto plan = handler_->handle(request(target), over_https);
    EXPECT_EQ(std::get<small_response>(plan).result(), http::status::forbidden) << target;
    EXPECT_NE(get(target).result(), http::status::forbidden) << target;
  }
}

TEST_F(status_handler, only_admin_endpoints_that_take_an_argument_accept_a_body) {
  // The target parsed once, as the server does, decides the body limit.
  const auto accepts = [](const http::request_header<>& head) {
    return request_handler::accepts_body(head, parse_request_target(head.target()));
  };
  EXPECT_EQ(accepts(request("/-/log-level", http::verb::put)), request_handler::max_body_size);
  EXPECT_EQ(accepts(request("/-/log-level")), 0U);
  EXPECT_EQ(accepts(request("/cache/file/x/1", http::verb::put)), 0U);
  EXPECT_EQ(accepts(request("/-/status", http::verb::put)), 0U);
  EXPECT_EQ(accepts(request("/-/../x", http::verb::put)), 0U);
}

TEST(status_page, html_escape_covers_the_five_special_characters) {
  EXPECT_EQ(html_escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(html_escape("plain 10.0.0.1"), "plain 10.0.0.1");
}

}  // namespace
}  // namespace lanrelay::relay
