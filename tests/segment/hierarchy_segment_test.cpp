// Issue 15: a 3-level hierarchy in routed subnets. A site relay mirrors the upstream; three
// segment relays, each on its own subnet one router away, mirror the site relay
// (/activeupdate/vendor/ as their upstream); ten agents per segment run `lanrelay update` against
// their segment relay at the same moment. Neither level fetches patterns ahead (include: engines;
// pull_through: patterns), so thirty agents asking for the pattern become three pull-throughs at
// the site relay and one download from the upstream. Run once with every segment relay talking to
// the site relay directly, once with a plain nginx proxy_cache (Debian's nginx, this test's own
// configuration, in the third segment's subnet) between the site relay and the third segment
// relay. Then every agent fetches the pulled-through pattern with `lanrelay fetch` by discovery
// alone (the segment relay offers it, its signed catalog vouches for it). Then a pattern release
// (a new full pattern and the diff to it): every agent takes the diff, the upstream sends the
// diff once and the new full pattern not at all; through the HTTP cache too, because the relay
// sends server.ini with Cache-Control: no-cache (without it nginx served the old index for the
// hour of its proxy_cache_valid, and the third segment never saw the release).
//
//   site 10.91.0.0/16:       upstream (nginx), site relay, router
//   segment N 10.9{2,3,4}:   router, segment relay, ten agents (and, in 10.94, the HTTP cache)
//
// The figures (upstream requests per file, bytes at each level, times) are printed for
// docs/scaling.md. Nothing here reaches the machine's own interfaces.

#include "au_upstream.hpp"
#include "segment_fixture.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/activeupdate_index.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::uint8_t site_subnet = 91;
constexpr std::array<std::uint8_t, 3> segment_subnets{92, 93, 94};
constexpr std::size_t agents_per_segment = 10;
constexpr std::uint16_t cache_port = 8080;
constexpr std::string_view admin_token = "hierarchy-test-token-0123456789";

const std::string pattern_v1 = "pattern/icrc/ioth1667900.zip";
const std::string pattern_v2 = "pattern/icrc/ioth1668000.zip";
const std::string pattern_diff = "pattern/icrc/ioth_1667900.1668000";
const std::string engine = "engine/engv_nt386_v12500-1004.zip";

// One level's bytes, from its /-/metrics.
struct relay_bytes {
  double served = 0;
  double fetched = 0;
};

class hierarchy_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-hierarchy")) {
      return;
    }
    tree_.emplace(work_ / "www");
    tree_->add(pattern_v1, 3'000'000);
    tree_->add(engine, 1'200'000);
    tree_->publish(index(1));

    auto& site = add_segment(site_subnet);
    upstream_host_ = &site.add_host("upstream");
    site_relay_host_ = &site.add_host("site-relay");
    router_ = &site.add_host("router");
    run_checked("ip netns exec " + router_->netns + " sysctl -qw net.ipv4.ip_forward=1");
    for (const auto subnet : segment_subnets) {
      auto* lan = segments_.emplace_back(&add_segment(subnet));
      const auto& router_side = lan->attach(*router_);
      for (const auto* h : {upstream_host_, site_relay_host_}) {
        run_checked("ip -n " + h->netns + " route add 10." + std::to_string(subnet) +
                    ".0.0/16 via " + router_->address);
      }
      relay_hosts_.push_back(&lan->add_host("segment-relay"));
      std::vector<const segment::host*> agents;
      for (std::size_t i = 0; i < agents_per_segment; ++i) {
        agents.push_back(&lan->add_host("agent" + std::to_string(subnet) + "-" + std::to_string(i)));
      }
      agents_.push_back(std::move(agents));
      route_to_site(*lan, router_side);
    }
    cache_host_ = &segments_.back()->add_host("http-cache");
    run_checked("ip -n " + cache_host_->netns + " route add 10." + std::to_string(site_subnet) +
                ".0.0/16 via 10." + std::to_string(segment_subnets.back()) + ".0.1");

    upstream_.emplace(work_ / "upstream", work_ / "www",
                      listen_on{.netns = upstream_host_->netns, .address = upstream_host_->address,
                                .port = 80});
    ASSERT_NO_FATAL_FAILURE(upstream_->start());
    site_key_ = generate_site_key(work_ / "site.key", work_ / "site-key.out");
    ASSERT_EQ(site_key_.rfind("lanrelay-ed25519:", 0), 0U) << site_key_;
  }

  // The router's namespace belongs to the site segment, made first: deleted last.
  void TearDown() override {
    upstream_.reset();
    segment_test::TearDown();
  }

  // Every host of `lan` but the router reaches the site subnet through the router.
  void route_to_site(const segment& lan, const segment::host& router_side) {
    for (const auto& h : lan.hosts()) {
      if (h.netns != router_side.netns) {
        run_checked("ip -n " + h.netns + " route add 10." + std::to_string(site_subnet) +
                    ".0.0/16 via " + router_side.address);
      }
    }
  }

  // server.ini of version 1 (a full pattern and an engine) or 2 (a new full pattern and the
  // diff to it from version 1).
  std::string index(int version) const {
    std::string s = "[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n\r\n[PATTERN]\r\n";
    if (version == 1) {
      s += "P.48020000=" + pattern_v1 + ",1667900," + std::to_string(tree_->size(pattern_v1)) + "\r\n";
    } else {
      s += "P.48020000=" + pattern_v2 + ",1668000," + std::to_string(tree_->size(pattern_v2)) + "\r\n";
      s += "P.48020000.Merge.1=" + pattern_diff + ",1667900," +
           std::to_string(tree_->size(pattern_diff)) + "\r\n";
    }
    s += "\r\n[ENGINE]\r\nE.4=VSAPI32_NT_I386," + engine + ",12.500.1004," +
         std::to_string(tree_->size(engine)) + ",6.510.1002\r\n";
    return s;
  }

  // lanrelayd on `host` mirroring `url` as source "vendor": engines ahead of time, patterns on
  // demand. Every relay of the site signs its catalog with the one site key.
  void start_relay(const std::string& name, const segment::host& host, const std::string& url) {
    const fs::path dir = work_ / name;
    fs::create_directories(dir / "state");
    const fs::path config = dir / "lanrelayd.toml";
    std::ofstream(config) << "[state]\ndir = \"" << (dir / "state").string() << "\"\n"
                          << "[relay]\nrole = \"relay\"\n[log]\nlevel = \"info\"\n"
                          << "[trust]\nsite_key = \"" << (work_ / "site.key").string() << "\"\n"
                          << "[admin]\ntoken = \"" << admin_token << "\"\n"
                          // Ten agents at once, each moving from one file to the next before
                          // the relay has freed its last slot: room for all of them.
                          << "[peers]\nmax_peers = 40\n"
                          << "[mirror]\npublic_url = \"http://" << host.address << ":4127\"\n"
                          << "pull_through_wait = \"2m\"\n"
                          << "[[mirror.source]]\nname = \"vendor\"\nurl = \"" << url << "\"\n"
                          << "jitter = \"0ms\"\ninclude = [\"ENGINE\"]\npull_through = [\"PATTERN\"]\n";
    ASSERT_TRUE(start_lanrelayd(processes_, host, config, dir / "lanrelayd.log"))
        << read_file(dir / "lanrelayd.log");
  }

  // Waits until the relay on `host` serves an index naming `path`, its sync is over and its
  // signed catalog lists the engine (hashed after the sync, on a worker thread).
  static bool serves(const segment::host& host, const std::string& path) {
    const std::string engine_item = activeupdate::segment_item_name(engine).value();
    return eventually(120s, [&] {
      if (http_get_in_netns(host.netns, "127.0.0.1", 4127, "/-/catalog", 10s).find(engine_item) ==
          std::string::npos) {
        return false;
      }
      if (http_get_in_netns(host.netns, host.address, 4127, "/activeupdate/vendor/server.ini", 10s)
              .find(path) == std::string::npos) {
        return false;
      }
      boost::system::error_code ec;
      const auto v = json::parse(http_get_in_netns(host.netns, "127.0.0.1", 4127, "/-/mirror", 10s), ec);
      return !ec && v.is_array() && !v.as_array().empty() &&
             v.at(0).at("files").to_number<int>() > 0 && !v.at(0).at("syncing").as_bool();
    });
  }

  // nginx as a standard HTTP cache (proxy_cache) in front of the site relay, on the cache host.
  void start_http_cache() {
    const fs::path dir = work_ / "http-cache";
    fs::create_directories(dir);
    std::ostringstream conf;
    conf << "user root;\nmaster_process off;\nworker_processes 1;\n"
         << "error_log " << (dir / "error.log").string() << " info;\n"
         << "pid " << (dir / "nginx.pid").string() << ";\n"
         << "events { worker_connections 256; }\nhttp {\n"
         << "  log_format cache '$request_method|$uri|$status|$body_bytes_sent|"
            "$upstream_cache_status';\n"
         << "  access_log " << (dir / "access.log").string() << " cache;\n";
    for (const char* temp : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
      conf << "  " << temp << "_temp_path " << (dir / temp).string() << ";\n";
    }
    conf << "  proxy_cache_path " << (dir / "cache").string()
         << " levels=1:2 keys_zone=relay:10m max_size=1g inactive=1h use_temp_path=off;\n"
         << "  server {\n    listen " << cache_host_->address << ":" << cache_port << ";\n"
         << "    location / {\n"
         << "      proxy_pass http://" << site_relay_host_->address << ":4127;\n"
         << "      proxy_http_version 1.1;\n      proxy_cache relay;\n"
         << "      proxy_cache_valid 200 1h;\n      proxy_cache_lock on;\n"
         << "      proxy_cache_lock_timeout 120s;\n    }\n  }\n}\n";
    spew(dir / "nginx.conf", conf.str());
    processes_.emplace_back(
        std::vector<std::string>{std::string(nginx_path), "-e", (dir / "error.log").string(), "-c",
                                 (dir / "nginx.conf").string(), "-p", dir.string() + "/", "-g",
                                 "daemon off;"},
        process::options{.netns = cache_host_->netns, .output = dir / "nginx.out"});
    ASSERT_TRUE(eventually(60s, [&] {
      return can_connect_in(cache_host_->netns, cache_host_->address, cache_port);
    })) << read_file(dir / "nginx.out") << read_file(dir / "error.log");
  }

  // The whole hierarchy, serving version 1 at every level.
  void start_hierarchy(bool through_cache) {
    through_cache_ = through_cache;
    ASSERT_NO_FATAL_FAILURE(start_relay("site-relay", *site_relay_host_,
                                        "http://" + upstream_host_->address + "/activeupdate/"));
    ASSERT_TRUE(serves(*site_relay_host_, pattern_v1)) << read_file(work_ / "site-relay" / "lanrelayd.log");
    const std::string site_url = "http://" + site_relay_host_->address + ":4127/activeupdate/vendor/";
    std::string cached_url;
    if (through_cache) {
      ASSERT_NO_FATAL_FAILURE(start_http_cache());
      cached_url = "http://" + cache_host_->address + ":" + std::to_string(cache_port) +
                   "/activeupdate/vendor/";
    }
    for (std::size_t s = 0; s < relay_hosts_.size(); ++s) {
      const bool cached = through_cache && s + 1 == relay_hosts_.size();
      ASSERT_NO_FATAL_FAILURE(start_relay(relay_name(s), *relay_hosts_[s], cached ? cached_url : site_url));
    }
    for (std::size_t s = 0; s < relay_hosts_.size(); ++s) {
      ASSERT_TRUE(serves(*relay_hosts_[s], pattern_v1)) << read_file(work_ / relay_name(s) / "lanrelayd.log");
    }
  }

  static std::string relay_name(std::size_t s) { return "segment-relay-" + std::to_string(s); }

  // `lanrelay update` on every agent of every segment at once, against its segment relay;
  // returns the results and the wall-clock time from the first start to the last exit.
  std::pair<std::vector<update_run>, double> update_everywhere(const std::string& round) {
    std::vector<process> running;
    std::vector<update_run> results;
    const auto started = std::chrono::steady_clock::now();
    for (std::size_t s = 0; s < agents_.size(); ++s) {
      for (const auto* agent : agents_[s]) {
        const fs::path dir = work_ / "agents" / agent->name;
        fs::create_directories(dir);
        update_run r;
        r.dir = dir / "au";
        running.emplace_back(
            std::vector<std::string>{LANRELAY_CLI_PATH, "update", "--index-url",
                                     "http://" + relay_hosts_[s]->address + ":4127/activeupdate/vendor/",
                                     "--dir", r.dir.string(), "--state-dir", (dir / "state").string(),
                                     "--site-key", site_key_, "--json", "--log-level", "info"},
            process::options{.netns = agent->netns, .output = dir / (round + ".out")});
        results.push_back(std::move(r));
      }
    }
    std::size_t i = 0;
    for (std::size_t s = 0; s < agents_.size(); ++s) {
      for (const auto* agent : agents_[s]) {
        auto& r = results[i];
        const auto status = running[i].wait_for(180s);
        r.exit_status = exit_code(status);
        r.log = read_file(work_ / "agents" / agent->name / (round + ".out"));
        r.report = update_report(r.log);
        ++i;
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return {std::move(results), seconds};
  }

  // Each agent installed exactly the upstream's bytes for `paths` (its own SHA-256 check against
  // the tree; `lanrelay update` checks sizes and, for offers, the signed catalog's digests).
  void expect_installed(const std::vector<update_run>& results, const std::vector<std::string>& paths) {
    std::map<std::string, std::string> expected;
    for (const auto& path : paths) {
      expected[path] = to_hex(sha256_of_file(tree_->file(path)).value());
    }
    for (const auto& r : results) {
      EXPECT_EQ(r.exit_status, 0) << r.log;
      ASSERT_TRUE(r.report.contains("ok")) << r.log;
      EXPECT_TRUE(r.report.at("ok").as_bool()) << r.log;
      for (const auto& [path, sha] : expected) {
        const auto got = sha256_of_file(r.dir / path);
        EXPECT_TRUE(got && to_hex(*got) == sha) << r.dir / path << "\n" << r.log;
      }
    }
  }

  static json::array components(const update_run& r) {
    const auto* list = r.report.if_contains("components");
    return list != nullptr && list->is_array() ? list->as_array() : json::array{};
  }

  // Requests the upstream got for each file, and their payload bytes.
  std::map<std::string, std::pair<std::size_t, std::uint64_t>> upstream_requests() const {
    std::map<std::string, std::pair<std::size_t, std::uint64_t>> by_path;
    for (const auto& line : upstream_->log()) {
      auto& [n, bytes] = by_path[line.uri.substr(std::string("/activeupdate/").size())];
      ++n;
      bytes += line.bytes;
    }
    return by_path;
  }

  static relay_bytes bytes_of(const segment::host& host) {
    const std::string metrics = http_get_in_netns(host.netns, "127.0.0.1", 4127, "/-/metrics", 10s);
    const auto value = [&](const std::string& name) {
      const auto at = metrics.find("\n" + name + " ");
      return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + name.size() + 2));
    };
    return {value("lanrelay_served_bytes_total"), value("lanrelay_upstream_fetched_bytes_total")};
  }

  // Requests the HTTP cache answered, by its verdict (MISS, HIT, ...).
  std::map<std::string, std::size_t> cache_verdicts() const {
    std::map<std::string, std::size_t> verdicts;
    std::istringstream in(read_file(work_ / "http-cache" / "access.log"));
    for (std::string line; std::getline(in, line);) {
      verdicts[line.substr(line.rfind('|') + 1)]++;
    }
    return verdicts;
  }

  // What each level carried so far.
  struct figures {
    std::map<std::string, std::pair<std::size_t, std::uint64_t>> upstream;
    relay_bytes site;
    std::vector<relay_bytes> segments;
  };
  figures measure() const {
    figures f{upstream_requests(), bytes_of(*site_relay_host_), {}};
    for (const auto* relay : relay_hosts_) {
      f.segments.push_back(bytes_of(*relay));
    }
    return f;
  }

  // The figures docs/scaling.md quotes: what each level carried since `before`.
  figures print_figures(const std::string& round, double seconds, const figures& before) {
    const figures now = measure();
    std::printf("[hierarchy %s%s]", round.c_str(),
                through_cache_ ? ", nginx proxy_cache before segment relay 3" : "");
    if (seconds >= 0) {
      std::printf(" %zu agents in %zu routed segments, %.1f s from the first agent's start to the "
                  "last one's exit",
                  agents_.size() * agents_per_segment, agents_.size(), seconds);
    }
    std::printf("\n");
    for (const auto& [path, counts] : now.upstream) {
      const auto was = before.upstream.contains(path) ? before.upstream.at(path) : std::pair<std::size_t, std::uint64_t>{};
      if (counts.first > was.first) {
        std::printf("  upstream        %-36s %zu request(s), %llu bytes\n", path.c_str(),
                    counts.first - was.first, static_cast<unsigned long long>(counts.second - was.second));
      }
    }
    std::printf("  site relay      fetched %.0f bytes from the upstream, served %.0f bytes\n",
                now.site.fetched - before.site.fetched, now.site.served - before.site.served);
    for (std::size_t s = 0; s < now.segments.size(); ++s) {
      const auto was = s < before.segments.size() ? before.segments[s] : relay_bytes{};
      std::printf("  segment relay %zu fetched %.0f bytes from the level above, served %.0f bytes\n",
                  s + 1, now.segments[s].fetched - was.fetched, now.segments[s].served - was.served);
    }
    // What one relay adds to a fleet's Prometheus: the samples of one scrape.
    std::istringstream metrics(http_get_in_netns(relay_hosts_[0]->netns, "127.0.0.1", 4127, "/-/metrics", 10s));
    std::size_t samples = 0;
    for (std::string line; std::getline(metrics, line);) {
      samples += !line.empty() && line[0] != '#' ? 1 : 0;
    }
    std::printf("  one segment relay's /-/metrics: %zu samples\n", samples);
    if (through_cache_) {
      for (const auto& [verdict, n] : cache_verdicts()) {
        std::printf("  nginx cache (all so far) %s: %zu\n", verdict.c_str(), n);
      }
    }
    std::fflush(stdout);
    return now;
  }

  // `lanrelay fetch` of the pulled-through pattern on every agent at once, by discovery only (no
  // upstream URL, a fresh state directory): the segment relay offers what it pulled through, and
  // its signed catalog vouches for the bytes.
  // Returns the time from the first start to the last exit.
  double fetch_pulled_item_everywhere() {
    const std::string item = activeupdate::segment_item_name(pattern_v1).value();
    for (const auto* relay : relay_hosts_) {
      EXPECT_TRUE(eventually(60s, [&] {
        return http_get_in_netns(relay->netns, "127.0.0.1", 4127, "/-/catalog", 10s).find(item) !=
               std::string::npos;
      })) << relay->name;
    }
    const auto started = std::chrono::steady_clock::now();
    const std::string expected = to_hex(sha256_of_file(tree_->file(pattern_v1)).value());
    std::vector<process> running;
    std::vector<fs::path> dirs;
    for (const auto& agents : agents_) {
      for (const auto* agent : agents) {
        const fs::path dir = work_ / "agents" / agent->name / "fetch";
        fs::create_directories(dir);
        running.emplace_back(
            std::vector<std::string>{LANRELAY_CLI_PATH, "fetch", "--kind", "file", "--name", item,
                                     "--version", std::to_string(tree_->size(pattern_v1)),
                                     "--output", (dir / "pattern.zip").string(), "--state-dir",
                                     (dir / "state").string(), "--site-key", site_key_, "--json",
                                     // Thirty agents start at once on a busy machine: a
                                     // generous window for the segment relay's answer.
                                     "--window", "3s", "--log-level", "info"},
            process::options{.netns = agent->netns, .output = dir / "fetch.out"});
        dirs.push_back(dir);
      }
    }
    for (std::size_t i = 0; i < running.size(); ++i) {
      const auto status = running[i].wait_for(180s);
      const std::string log = read_file(dirs[i] / "fetch.out");
      EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << log;
      const auto report = fetch_report(log);
      const auto* source = report.if_contains("source");
      EXPECT_TRUE(source != nullptr && source->is_string() && source->as_string() == "relay") << log;
      const auto* verified = report.if_contains("verified");
      EXPECT_TRUE(verified != nullptr && verified->is_bool() && verified->as_bool()) << log;
      const auto got = sha256_of_file(dirs[i] / "pattern.zip");
      EXPECT_TRUE(got && to_hex(*got) == expected) << log;
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  }

  // An admin "update now" on `host`, from its own loopback.
  void sync_now(const segment::host& host) {
    const auto sync = run_lanrelay(
        {"mirror", "sync", "vendor", "--relay", "127.0.0.1:4127", "--json"},
        work_ / ("sync-" + host.name + "-" + std::to_string(++syncs_) + ".out"), host.netns,
        {"LANRELAY_ADMIN_TOKEN=" + std::string(admin_token)}, 120s);
    EXPECT_EQ(sync.exit_status, 0) << sync.output;
  }

  // The scenario of both tests.
  void run(bool through_cache) {
    ASSERT_NO_FATAL_FAILURE(start_hierarchy(through_cache));
    const figures start = print_figures("set-up: every relay's first sync", -1, figures{});

    // Release 1: thirty agents at once, nothing installed yet.
    auto [first, first_seconds] = update_everywhere("release1");
    const figures after_first = print_figures("release 1", first_seconds, start);
    expect_installed(first, {pattern_v1, activeupdate::signature_path(pattern_v1), engine,
                             activeupdate::signature_path(engine)});
    for (const auto& path : {std::string("server.ini"), pattern_v1,
                             activeupdate::signature_path(pattern_v1), engine,
                             activeupdate::signature_path(engine)}) {
      EXPECT_EQ(after_first.upstream.contains(path) ? after_first.upstream.at(path).first : 0U, 1U)
          << path;
    }
    EXPECT_EQ(after_first.upstream.size(), 5U);
    if (through_cache) {
      const auto through = read_file(work_ / "http-cache" / "access.log");
      EXPECT_NE(through.find("GET|/activeupdate/vendor/server.ini|200|"), std::string::npos) << through;
      EXPECT_NE(through.find("GET|/activeupdate/vendor/" + pattern_v1 + "|200|"), std::string::npos)
          << through;
    }

    // The pulled-through pattern, now on every segment relay, fetched by discovery.
    const double fetch_seconds = fetch_pulled_item_everywhere();
    const figures after_fetch = print_figures("fetch of the pulled-through pattern", fetch_seconds, after_first);
    EXPECT_EQ(after_fetch.upstream, after_first.upstream);

    // Release 2: the upstream publishes a new pattern and the diff to it; the site relay and then
    // the segment relays are told to update now (as their schedules would), then the agents run
    // again and each takes the diff.
    tree_->add(pattern_v2, 3'100'000);
    tree_->add(pattern_diff, 250'000);
    tree_->publish(index(2));
    sync_now(*site_relay_host_);
    for (const auto* relay : relay_hosts_) {
      sync_now(*relay);
    }
    const figures before_second = measure();
    auto [second, second_seconds] = update_everywhere("release2");
    const figures after_second = print_figures("release 2 (syncs and agents)", second_seconds, after_fetch);
    expect_installed(second, {pattern_diff});
    for (const auto& r : second) {
      for (const auto& c : components(r)) {
        if (c.at("component").as_string() == "P.48020000") {
          EXPECT_EQ(c.at("action").as_string(), "diff") << r.log;
        }
      }
    }
    EXPECT_EQ(before_second.upstream.at("server.ini").first, 2U);  // one per release, site relay only
    EXPECT_EQ(after_second.upstream.at("server.ini").first, 2U);
    EXPECT_EQ(after_second.upstream.contains(pattern_diff) ? after_second.upstream.at(pattern_diff).first : 0U, 1U);
    EXPECT_FALSE(after_second.upstream.contains(pattern_v2)) << "nobody asked for the new full pattern";
    EXPECT_EQ(after_second.upstream.size(), 6U);
  }

  std::optional<au_tree> tree_;
  std::vector<segment*> segments_;  // one per segment subnet
  const segment::host* upstream_host_ = nullptr;
  const segment::host* site_relay_host_ = nullptr;
  const segment::host* router_ = nullptr;
  const segment::host* cache_host_ = nullptr;
  std::vector<const segment::host*> relay_hosts_;
  std::vector<std::vector<const segment::host*>> agents_;
  std::optional<nginx> upstream_;
  std::string site_key_;
  bool through_cache_ = false;
  int syncs_ = 0;
};

TEST_F(hierarchy_segment, each_file_crosses_the_wan_once_for_three_routed_segments) {
  run(false);
}

TEST_F(hierarchy_segment, an_nginx_proxy_cache_between_levels_keeps_it_once) {
  run(true);
}

}  // namespace
}  // namespace lanrelay::test
