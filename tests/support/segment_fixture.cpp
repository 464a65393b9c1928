#include "segment_fixture.hpp"

#include "lanrelay/base/sha256.hpp"

#include <boost/json/parse.hpp>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <fstream>
#include <random>

namespace lanrelay::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path make_work_dir(std::string_view prefix) {
  std::string pattern = "/tmp/" + std::string(prefix) + ".XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return {};
  }
  return pattern;
}

std::string write_random_file(const fs::path& file, std::size_t bytes, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::vector<std::uint64_t> words((bytes + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t));
  for (auto& w : words) {
    w = random();
  }
  std::ofstream(file, std::ios::binary)
      .write(reinterpret_cast<const char*>(words.data()), static_cast<std::streamsize>(bytes));
  const auto digest = sha256_of_file(file);
  return digest ? to_hex(*digest) : std::string();
}

bool start_web_server(std::deque<process>& processes, const segment::host& host,
                      const fs::path& dir, const fs::path& root, const std::string& probe_path,
                      std::string* failure, const std::vector<std::string>& listen) {
  const std::vector<std::string> addresses =
      listen.empty() ? std::vector<std::string>{host.address} : listen;
  fs::create_directories(dir / "logs");
  std::ofstream config(dir / "nginx.conf");
  config << "user root;\nworker_processes 1;\npid " << (dir / "nginx.pid").string()
         << ";\nerror_log " << (dir / "error.log").string()
         << ";\nevents { worker_connections 256; }\n"
         << "http { access_log " << (dir / "access.log").string() << "; sendfile on; server {";
  for (const auto& address : addresses) {
    config << " listen " << (address.find(':') != std::string::npos ? "[" + address + "]" : address)
           << ":80;";
  }
  config << " root " << root.string() << "; } }\n";
  config.close();
  processes.emplace_back(std::vector<std::string>{"/usr/sbin/nginx", "-c",
                                                  (dir / "nginx.conf").string(), "-p",
                                                  dir.string(), "-g", "daemon off;"},
                         process::options{.netns = host.netns, .output = dir / "out.log"});
  const bool serving = eventually(60s, [&] {
    return !http_get_in_netns(host.netns, addresses.front(), 80, probe_path, 10s).empty();
  });
  if (!serving) {
    if (failure != nullptr) {
      *failure = read_file(dir / "error.log");
    }
    return false;
  }
  fs::remove(dir / "access.log");  // the readiness probe does not count
  ::kill(static_cast<pid_t>(std::stol(read_file(dir / "nginx.pid"))), SIGUSR1);  // reopen logs
  return true;
}

std::size_t web_server_requests(const fs::path& dir, std::string_view what) {
  std::ifstream in(dir / "access.log");
  std::size_t lines = 0;
  for (std::string line; std::getline(in, line);) {
    lines += line.find(what) != std::string::npos ? 1 : 0;
  }
  return lines;
}

bool start_lanrelayd(std::deque<process>& processes, const segment::host& host,
                     const fs::path& config, const fs::path& log, std::string_view ready_event) {
  processes.emplace_back(std::vector<std::string>{LANRELAYD_PATH, "--config", config.string()},
                         process::options{.netns = host.netns, .output = log});
  const std::string address = host.address.empty() ? "127.0.0.1" : host.address;
  return eventually(60s, [&] {
    return read_file(log).find(ready_event) != std::string::npos &&
           !http_get_in_netns(host.netns, address, 4127, "/-/healthz", 10s).empty();
  });
}

boost::json::object daemon_stats(const segment::host& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto parsed =
      boost::json::parse(http_get_in_netns(host.netns, "127.0.0.1", port, "/-/stats"), ec);
  return !ec && parsed.is_object() ? std::move(parsed.as_object()) : boost::json::object{};
}

std::string generate_site_key(const fs::path& key_file, const fs::path& output) {
  process generate({LANRELAY_CLI_PATH, "key", "generate", "--out", key_file.string()},
                   process::options{.output = output});
  if (!generate.wait_for(30s)) {
    return {};
  }
  std::string text = read_file(output);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  return text;
}

boost::json::object report_line(const std::string& log, std::string_view first_key) {
  const auto start = log.find("{\"" + std::string(first_key) + "\"");
  if (start == std::string::npos) {
    return {};
  }
  boost::system::error_code ec;
  auto parsed = boost::json::parse(log.substr(start, log.find('\n', start) - start), ec);
  if (ec || !parsed.is_object()) {
    return {};
  }
  return std::move(parsed.as_object());
}

boost::json::object fetch_report(const std::string& log) { return report_line(log, "source"); }

boost::json::object update_report(const std::string& log) { return report_line(log, "index_url"); }

int exit_code(const std::optional<int>& status) {
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

cli_run run_lanrelay(const std::vector<std::string>& args, const fs::path& output,
                     const std::string& netns, const std::vector<std::string>& environment,
                     std::chrono::seconds guard) {
  std::vector<std::string> argv{LANRELAY_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  fs::remove(output);
  process p(argv, process::options{.netns = netns, .output = output, .environment = environment});
  const int status = exit_code(p.wait_for(guard));
  return {status, read_file(output)};
}

std::string json_text(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::vector<fetch_run> fetch_on_agents(const fs::path& work,
                                       const std::vector<const segment::host*>& agents,
                                       const std::vector<std::string>& args,
                                       const std::string& expected_sha256,
                                       std::chrono::seconds guard) {
  std::vector<process> running;
  const auto started = std::chrono::steady_clock::now();
  for (const auto* agent : agents) {
    const fs::path dir = work / agent->name;
    fs::create_directories(dir);
    std::vector<std::string> argv{LANRELAY_CLI_PATH, "fetch", "--kind", "file", "--name",
                                  "payload", "--version", "1", "--output",
                                  (dir / "payload.bin").string(), "--state-dir",
                                  (dir / "state").string(), "--json", "--log-level", "info"};
    argv.insert(argv.end(), args.begin(), args.end());
    fs::remove(dir / "fetch.out");
    fs::remove(dir / "payload.bin");
    running.emplace_back(argv, process::options{.netns = agent->netns, .output = dir / "fetch.out"});
  }
  std::vector<fetch_run> runs;
  for (std::size_t i = 0; i < running.size(); ++i) {
    const fs::path dir = work / agents[i]->name;
    fetch_run r;
    r.exit_status = exit_code(running[i].wait_for(guard));
    r.took = std::chrono::steady_clock::now() - started;
    r.log = read_file(dir / "fetch.out");
    r.report = fetch_report(r.log);
    const auto digest = sha256_of_file(dir / "payload.bin");
    r.bytes_ok = digest && to_hex(*digest) == expected_sha256;
    runs.push_back(std::move(r));
  }
  return runs;
}

}  // namespace lanrelay::test
