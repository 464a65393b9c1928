// The fleet's dashboard (deploy/grafana/lanrelay-fleet.json) and alert rules
// (deploy/prometheus/lanrelay-rules.yml) query only metrics the daemons export: a real lanrelayd
// with a synced mirror source and a real proxyhelperd with one proxy, both on 127.0.0.1, are
// scraped, and every lanrelay_* name the two files use must be among the scraped samples.

#include "au_upstream.hpp"
#include "relayd_harness.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const fs::path source_dir = LANRELAY_SOURCE_DIR;

// Metric names with at least one sample in a Prometheus text exposition.
std::set<std::string> sampled_names(const std::string& exposition) {
  std::set<std::string> out;
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.front() == '#') {
      continue;
    }
    out.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return out;
}

std::set<std::string> lanrelay_names(const std::string& text) {
  std::set<std::string> out;
  const std::regex name("lanrelay_[a-z0-9_]+");
  for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it) {
    out.insert(it->str());
  }
  return out;
}

// Every "expr" of the dashboard, joined.
void collect_exprs(const json::value& v, std::string& out) {
  if (v.is_object()) {
    for (const auto& [key, value] : v.get_object()) {
      if ((key == "expr" || key == "definition") && value.is_string()) {
        out += std::string(value.get_string()) + "\n";
      } else {
        collect_exprs(value, out);
      }
    }
  } else if (v.is_array()) {
    for (const auto& e : v.get_array()) {
      collect_exprs(e, out);
    }
  }
}

// The rules file without its comment lines (which may name metrics in prose).
std::string rules_without_comments(const fs::path& file) {
  std::ifstream in(file);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(' ');
    if (first != std::string::npos && line[first] == '#') {
      continue;
    }
    out += line + "\n";
  }
  return out;
}

class fleet_metrics : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-fleet-metrics.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    relay_.reset();
    proxyhelperd_.reset();
    upstream_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  fs::path root_;
  std::unique_ptr<nginx> upstream_;
  std::unique_ptr<relayd> relay_;
  std::optional<process> proxyhelperd_;
};

TEST_F(fleet_metrics, every_metric_the_dashboard_and_the_rules_use_is_exported) {
  // An upstream with one pattern and one engine, and a relay that mirrors it.
  au_tree tree(root_ / "www");
  const std::string pattern = "pattern/icrc/ioth1667900.zip";
  const std::string engine = "engine/engv_nt386_v12500-1004.zip";
  tree.add(pattern, 20'000);
  tree.add(engine, 10'000);
  tree.publish("[PATTERN]\r\nP.48020000=" + pattern + ",1667900,20000\r\n\r\n[ENGINE]\r\nE.4=VSAPI32_NT_I386," +
               engine + ",12.500.1004,10000,6.510.1002\r\n");
  upstream_ = std::make_unique<nginx>(root_ / "nginx", root_ / "www");
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  relay_ = std::make_unique<relayd>(
      "[mirror]\npublic_url = \"http://relay.lan:4127\"\n[[mirror.source]]\nname = \"vendor\"\n"
      "url = \"http://127.0.0.1:" + std::to_string(upstream_->port()) + "/activeupdate/\"\njitter = \"0ms\"\n");
  ASSERT_TRUE(eventually(60s, [&] {
    boost::system::error_code ec;
    const auto v = json::parse(relay_->request("GET", "/-/mirror").message.body(), ec);
    return !ec && v.is_array() && !v.as_array().empty() &&
           v.at(0).at("freshness").as_array().size() == 2 && !v.at(0).at("syncing").as_bool() &&
           v.at(0).at("files").to_number<int>() > 0;
  })) << relay_->log();

  // proxyhelperd with one proxy (nothing listens there: it is unhealthy, which is a sample too).
  const fs::path config = root_ / "proxyhelperd.toml";
  std::ofstream(config) << "[state]\ndir = \"" << (root_ / "proxy-state").string() << "\"\n"
                        << "[http]\nlisten = \"127.0.0.1\"\nport = 0\n[https]\nport = 0\n"
                        << "[query]\nipv6 = false\n"
                        << "[health]\nprobe_url = \"http://127.0.0.1:" << free_port()
                        << "/\"\ninterval = \"1h\"\ntimeout = \"10s\"\n"
                        << "[[proxy]]\nurl = \"http://127.0.0.1:" << free_port() << "\"\n";
  const fs::path log = root_ / "proxyhelperd.log";
  proxyhelperd_.emplace(std::vector<std::string>{PROXYHELPERD_PATH, "--config", config.string(),
                                                 "--query-port", std::to_string(free_port())},
                        process::options{.output = log});
  ASSERT_TRUE(eventually(30s, [&] {
    return read_file(log).find("http 127.0.0.1:") != std::string::npos;
  })) << read_file(log);
  const auto text = read_file(log);
  const auto proxy_port = static_cast<std::uint16_t>(std::stoul(text.substr(text.find("http 127.0.0.1:") + 15)));

  std::set<std::string> exported = sampled_names(relay_->request("GET", "/-/metrics").message.body());
  std::string proxy_metrics;
  ASSERT_TRUE(eventually(30s, [&] {
    raw_connection c(proxy_port);
    c.send_all("GET /-/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    proxy_metrics = c.read_response().message.body();
    return proxy_metrics.find("lanrelay_proxy_healthy{") != std::string::npos;
  })) << proxy_metrics << read_file(log);
  exported.merge(sampled_names(proxy_metrics));

  // The dashboard.
  std::ifstream dashboard_file(source_dir / "deploy" / "grafana" / "lanrelay-fleet.json");
  std::stringstream dashboard_text;
  dashboard_text << dashboard_file.rdbuf();
  boost::system::error_code ec;
  const auto dashboard = json::parse(dashboard_text.str(), ec);
  ASSERT_FALSE(ec) << "deploy/grafana/lanrelay-fleet.json is not JSON: " << ec.message();
  std::string exprs;
  collect_exprs(dashboard, exprs);
  const auto queried = lanrelay_names(exprs);
  EXPECT_GE(queried.size(), 25U) << exprs;
  for (const auto& name : queried) {
    EXPECT_TRUE(exported.contains(name)) << "the dashboard queries " << name
                                         << ", which neither daemon exports";
  }

  // The alert rules.
  const auto ruled = lanrelay_names(rules_without_comments(source_dir / "deploy" / "prometheus" / "lanrelay-rules.yml"));
  EXPECT_GE(ruled.size(), 12U);
  for (const auto& name : ruled) {
    EXPECT_TRUE(exported.contains(name)) << "an alert rule uses " << name
                                         << ", which neither daemon exports";
  }
}

}  // namespace
}  // namespace lanrelay::test
