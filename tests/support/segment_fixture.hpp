#pragma once

// What the segment tests that run whole segments share: a work directory and a payload in it, an
// nginx web server on a host of the segment and its request count, lanrelayd started on a host
// and waited for and its /-/stats, a site key made with `lanrelay key generate`, agents running
// `lanrelay fetch --json` at once, with their reports, and `segment_test`, the base fixture that
// puts these together (its contract is stated above the class).
//
// Processes go into the caller's deque (`processes`), which the test clears before the segment
// goes, so that they are killed and reaped first. Every wait is a hang guard on an event.
//
// The free functions need no GoogleTest (bench_segment links them); `segment_test` is defined in
// this header, so only the test binaries that derive from it use GoogleTest.

#include "process.hpp"
#include "segment.hpp"

#include "lanrelay/content/store.hpp"

#include <boost/json/object.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace lanrelay::test {

// A new directory /tmp/<prefix>.XXXXXX; empty on failure.
std::filesystem::path make_work_dir(std::string_view prefix);

// `bytes` pseudo-random bytes in `file`, the same for the same `seed` (64-bit words of
// std::mt19937_64, the last one cut short when `bytes` is not a multiple of 8); returns their
// SHA-256 in hex.
std::string write_random_file(const std::filesystem::path& file, std::size_t bytes,
                              std::uint64_t seed);

// nginx on port 80 of `listen` (addresses; default the host's IPv4 address) serving `root`, its
// configuration, pid file and logs in `dir`. Waits until it serves `probe_path` on the first
// address, then starts the access log afresh so that the probe does not count. False (with
// nginx's error log in `failure`) when it never served the probe.
bool start_web_server(std::deque<process>& processes, const segment::host& host,
                      const std::filesystem::path& dir, const std::filesystem::path& root,
                      const std::string& probe_path, std::string* failure = nullptr,
                      const std::vector<std::string>& listen = {});

// Requests the web server started in `dir` got whose access log line contains `what`.
std::size_t web_server_requests(const std::filesystem::path& dir, std::string_view what);

// lanrelayd with `config` on `host`, output to `log`; waits until its log has `ready_event` and
// it answers /-/healthz on port 4127 (of the host's IPv4 address; 127.0.0.1 on an IPv6-only
// segment). False when it did not within the hang guard.
bool start_lanrelayd(std::deque<process>& processes, const segment::host& host,
                     const std::filesystem::path& config, const std::filesystem::path& log,
                     std::string_view ready_event = "event=discovery_listening");

// A daemon's /-/stats on `host` (127.0.0.1:`port`: 4127 lanrelayd, 4130 proxyhelperd); empty when
// it did not answer with an object.
boost::json::object daemon_stats(const segment::host& host, std::uint16_t port = 4127);

// `lanrelay key generate --out <key_file>`; returns the public key text it printed (its output
// is kept in `output`).
std::string generate_site_key(const std::filesystem::path& key_file,
                              const std::filesystem::path& output);

// The JSON object on the line of `log` that starts with {"<first_key>" (a CLI's --json report
// among its log lines); empty when there is none.
boost::json::object report_line(const std::string& log, std::string_view first_key);

// The report `lanrelay fetch --json` printed in `log` (the line starting {"source"); empty when
// there is none.
boost::json::object fetch_report(const std::string& log);

// The exit code in a wait status from process::wait_for; -1 when killed by a signal or still
// running at the hang guard (nullopt).
int exit_code(const std::optional<int>& status);

// One run of the CLI, as run_lanrelay saw it.
struct cli_run {
  int exit_status = -1;  // as exit_code
  std::string output;    // stdout and stderr
};

// `lanrelay <args>` in `netns` (empty: the test's own namespace) with `environment` added, its
// output in `output` (removed first); waits within `guard`.
cli_run run_lanrelay(const std::vector<std::string>& args, const std::filesystem::path& output,
                     const std::string& netns = {},
                     const std::vector<std::string>& environment = {},
                     std::chrono::seconds guard = std::chrono::seconds(60));

// One agent's `lanrelay update --json`.
struct update_run {
  int exit_status = -1;        // as exit_code
  boost::json::object report;  // update_report of its output
  std::string log;
  std::filesystem::path dir;   // its --dir, where the update installs
};

// The report `lanrelay update --json` printed in `log` (the line starting {"index_url"); empty
// when there is none.
boost::json::object update_report(const std::string& log);

// The string `key` of `o`; empty when absent or not a string.
std::string json_text(const boost::json::object& o, std::string_view key);

// One agent's `lanrelay fetch`, as fetch_on_agents saw it.
struct fetch_run {
  int exit_status = -1;  // -1: killed by a signal, or still running at the hang guard
  boost::json::object report;  // fetch_report of its output
  bool bytes_ok = false;       // the output file has the expected SHA-256
  std::string log;
  // From the start of the first agent's fetch to this one's exit (or the hang guard).
  std::chrono::steady_clock::duration took{};
};

// `lanrelay fetch --kind file --name payload --version 1 --json --log-level info` on every host
// in `agents` at once, with `args` after it (the upstream, the trust source, options); each
// agent's output file, state directory and output in <work>/<agent name>/ (payload.bin, state,
// fetch.out). Waits for each within `guard`.
std::vector<fetch_run> fetch_on_agents(const std::filesystem::path& work,
                                       const std::vector<const segment::host*>& agents,
                                       const std::vector<std::string>& args,
                                       const std::string& expected_sha256,
                                       std::chrono::seconds guard = std::chrono::seconds(120));

// The base fixture of the whole-segment tests (tests/segment/). What a derived fixture gets and
// what it must do:
// - Its SetUp begins with `if (!set_up_segment_test("lanrelay-<name>", {"nginx"})) { return; }`:
//   the test is skipped unless segment::supported() and every tool named is on PATH, then work_
//   is made (/tmp/<prefix>.XXXXXX; the test fails when it cannot be). False: skipped or failed,
//   nothing more to set up.
// - Segments come from add_segment: owned here, deleted in TearDown in the reverse order of their
//   making (so a segment that attached a host of an earlier one goes first), after processes_ was
//   cleared (each killed and reaped, in order). work_ is removed last.
// - A derived fixture that owns more that lives in the namespaces (threads on their sockets,
//   process or nginx members) releases it in its own TearDown and then calls
//   segment_test::TearDown().
// - The payload (write_payload) is <work>/www/payload.bin: what the upstream web server
//   (start_upstream_server) serves as /payload.bin, and the item (file, "payload", "1") that
//   relays hold (hold_payload) and agents fetch (fetch_payload).
// The helpers that start something fail the test with a fatal assertion when it does not start;
// wrap them in ASSERT_NO_FATAL_FAILURE to stop the test there.
class segment_test : public testing::Test {
 protected:
  [[nodiscard]] bool set_up_segment_test(std::string_view work_prefix,
                                         std::initializer_list<std::string_view> tools = {"nginx"}) {
    check_tools_and_make_work_dir(work_prefix, tools);
    return !IsSkipped() && !HasFatalFailure();
  }

  void TearDown() override {
    processes_.clear();
    while (!owned_segments_.empty()) {
      owned_segments_.pop_back();
    }
    if (!work_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(work_, ignored);
    }
  }

  segment& add_segment(std::uint8_t subnet = 77,
                       segment::addressing mode = segment::addressing::ipv4) {
    return *owned_segments_.emplace_back(std::make_unique<segment>(subnet, mode));
  }

  // `count` new hosts on `lan`, named <prefix>0, <prefix>1, ...
  static std::vector<const segment::host*> add_agents(segment& lan, std::size_t count,
                                                      const std::string& prefix = "agent") {
    std::vector<const segment::host*> agents;
    for (std::size_t i = 0; i < count; ++i) {
      agents.push_back(&lan.add_host(prefix + std::to_string(i)));
    }
    return agents;
  }

  // `bytes` bytes from write_random_file(`seed`) as the payload; sets payload_sha_ and
  // payload_size_.
  void write_payload(std::size_t bytes, std::uint64_t seed) {
    std::filesystem::create_directories(work_ / "www");
    payload_ = work_ / "www" / "payload.bin";
    payload_sha_ = write_random_file(payload_, bytes, seed);
    payload_size_ = std::filesystem::file_size(payload_);
  }

  // nginx on `host` serving <work>/www, its own files in <work>/nginx (start_web_server), ready
  // once it serves `probe`; upstream_address_ becomes the host's address.
  void start_upstream_server(const segment::host& host, const std::string& probe = "/payload.bin") {
    upstream_address_ = host.address;
    std::string failure;
    ASSERT_TRUE(start_web_server(processes_, host, work_ / "nginx", work_ / "www", probe, &failure))
        << failure;
  }

  // Requests the upstream web server got whose log line contains `what`.
  std::size_t upstream_requests(std::string_view what = "/payload.bin") const {
    return web_server_requests(work_ / "nginx", what);
  }

  std::string upstream_url() const { return "http://" + upstream_address_ + "/payload.bin"; }

  // The caller's trust in the payload for `lanrelay fetch`: --sha256 and --size.
  std::vector<std::string> digest_args() const {
    return {"--sha256", payload_sha_, "--size", std::to_string(payload_size_)};
  }

  // <work>/<name>/state: the state directory of the daemon start_relay_daemon runs as `name`.
  std::filesystem::path state_dir(const std::string& name) const { return work_ / name / "state"; }
  std::filesystem::path daemon_log(const std::string& name) const {
    return work_ / name / "lanrelayd.log";
  }

  // `lanrelay key generate` into state_dir(name)/site.key, where lanrelayd as `name` finds its
  // site key; returns the public key (the test fails when there is none).
  std::string make_site_key(const std::string& name) {
    std::filesystem::create_directories(state_dir(name));
    std::string key =
        generate_site_key(state_dir(name) / "site.key", work_ / (name + "-key.out"));
    EXPECT_FALSE(key.empty());
    return key;
  }

  // Puts the payload into the cache of the lanrelayd state directory `state`.
  void hold_payload(const std::filesystem::path& state) {
    std::filesystem::create_directories(state);
    auto store = content_store::open({.dir = state / "cache"}).value();
    ASSERT_TRUE(store->add_file(payload_, item_key{item_kind::file, "payload", "1"}));
  }

  // lanrelayd on `host` as `name`: its configuration <work>/<name>/lanrelayd.toml is [state] dir =
  // state_dir(name) (made here) followed by `config`; its output goes to daemon_log(name). Waits
  // as start_lanrelayd does.
  void start_relay_daemon(const segment::host& host, const std::string& name,
                          const std::string& config,
                          std::string_view ready_event = "event=discovery_listening") {
    std::filesystem::create_directories(state_dir(name));
    const auto file = work_ / name / "lanrelayd.toml";
    std::ofstream(file) << "[state]\ndir = \"" << state_dir(name).string() << "\"\n" << config;
    ASSERT_TRUE(start_lanrelayd(processes_, host, file, daemon_log(name), ready_event))
        << read_file(daemon_log(name));
  }

  // fetch_on_agents in work_ for the payload, with `args` (the upstream, the trust source,
  // options).
  std::vector<fetch_run> fetch_payload(const std::vector<const segment::host*>& agents,
                                       const std::vector<std::string>& args,
                                       std::chrono::seconds guard = std::chrono::seconds(120)) {
    return fetch_on_agents(work_, agents, args, payload_sha_, guard);
  }

  std::filesystem::path work_;
  std::deque<process> processes_;
  std::filesystem::path payload_;
  std::string payload_sha_;  // hex
  std::uint64_t payload_size_ = 0;
  std::string upstream_address_;

 private:
  void check_tools_and_make_work_dir(std::string_view work_prefix,
                                     std::initializer_list<std::string_view> tools) {
    std::string needs = "root, iproute2, nftables";
    bool present = segment::supported();
    for (const auto tool : tools) {
      needs += ", " + std::string(tool);
      present = present &&
                std::system(("command -v " + std::string(tool) + " >/dev/null").c_str()) == 0;
    }
    if (!present) {
      GTEST_SKIP() << "segment tests need " << needs << " (deploy/install-deps.sh --test)";
    }
    work_ = make_work_dir(work_prefix);
    ASSERT_FALSE(work_.empty()) << "no work directory for " << work_prefix;
  }

  std::vector<std::unique_ptr<segment>> owned_segments_;  // in the order of their making
};

}  // namespace lanrelay::test
