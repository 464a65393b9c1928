#pragma once

// What the segment tests that run whole segments share: a work directory and a payload in it, an
// nginx web server on a host of the segment and its request count, lanrelayd started on a host
// and waited for and its /-/stats, a site key made with `lanrelay key generate`, and agents
// running `lanrelay fetch --json` at once, with their reports.
//
// Processes go into the caller's deque (`processes`), which the test clears before the segment
// goes, so that they are killed and reaped first. Every wait is a hang guard on an event.

#include "process.hpp"
#include "segment.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>

#include <cstddef>
#include <deque>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::test {

// A new directory /tmp/<prefix>.XXXXXX; empty on failure.
std::filesystem::path make_work_dir(std::string_view prefix);

// `bytes` pseudo-random bytes in `file`, the same for the same `seed`; returns their SHA-256 in hex.
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

// lanrelayd's /-/stats on `host` (127.0.0.1:4127); empty when it did not answer with an object.
boost::json::object daemon_stats(const segment::host& host);

// `lanrelay key generate --out <key_file>`; returns the public key text it printed (its output
// is kept in `output`).
std::string generate_site_key(const std::filesystem::path& key_file,
                              const std::filesystem::path& output);

// The report `lanrelay fetch --json` printed in `log` (the line starting {"source"); empty when
// there is none.
boost::json::object fetch_report(const std::string& log);

// The string `key` of `o`; empty when absent or not a string.
std::string json_text(const boost::json::object& o, std::string_view key);

// One agent's `lanrelay fetch`, as fetch_on_agents saw it.
struct fetch_run {
  int exit_status = -1;  // -1: killed by a signal, or still running at the hang guard
  boost::json::object report;  // fetch_report of its output
  bool bytes_ok = false;       // the output file has the expected SHA-256
  std::string log;
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

}  // namespace lanrelay::test
