#pragma once

// What the segment tests that run whole segments share: a work directory, an nginx web server on
// a host of the segment, lanrelayd started on a host and waited for, a site key made with
// `lanrelay key generate`, and the JSON report of `lanrelay fetch --json`.
//
// Processes go into the caller's deque (`processes`), which the test clears before the segment
// goes, so that they are killed and reaped first. Every wait is a hang guard on an event.

#include "process.hpp"
#include "segment.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <deque>
#include <filesystem>
#include <string>
#include <string_view>

namespace lanrelay::test {

// A new directory /tmp/<prefix>.XXXXXX; empty on failure.
std::filesystem::path make_work_dir(std::string_view prefix);

// nginx on `host`:80 serving `root`, its configuration, pid file and logs in `dir`. Waits until it
// serves `probe_path`, then starts the access log afresh so that the probe does not count.
// False (with nginx's error log in `failure`) when it never served the probe.
bool start_web_server(std::deque<process>& processes, const segment::host& host,
                      const std::filesystem::path& dir, const std::filesystem::path& root,
                      const std::string& probe_path, std::string* failure = nullptr);

// Requests the web server started in `dir` got whose access log line contains `what`.
std::size_t web_server_requests(const std::filesystem::path& dir, std::string_view what);

// lanrelayd with `config` on `host`, output to `log`; waits until it listens for discovery and
// answers /-/healthz on port 4127. False when it did not within the hang guard.
bool start_lanrelayd(std::deque<process>& processes, const segment::host& host,
                     const std::filesystem::path& config, const std::filesystem::path& log);

// `lanrelay key generate --out <key_file>`; returns the public key text it printed (its output
// is kept in `output`).
std::string generate_site_key(const std::filesystem::path& key_file,
                              const std::filesystem::path& output);

// The report `lanrelay fetch --json` printed in `log` (the line starting {"source"); empty when
// there is none.
boost::json::object fetch_report(const std::string& log);

}  // namespace lanrelay::test
