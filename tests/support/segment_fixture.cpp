#include "segment_fixture.hpp"

#include <boost/json/parse.hpp>

#include <signal.h>
#include <stdlib.h>

#include <fstream>

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

bool start_web_server(std::deque<process>& processes, const segment::host& host,
                      const fs::path& dir, const fs::path& root, const std::string& probe_path,
                      std::string* failure) {
  fs::create_directories(dir / "logs");
  std::ofstream(dir / "nginx.conf") << "user root;\nworker_processes 1;\npid "
                                    << (dir / "nginx.pid").string() << ";\nerror_log "
                                    << (dir / "error.log").string()
                                    << ";\nevents { worker_connections 256; }\n"
                                    << "http { access_log " << (dir / "access.log").string()
                                    << "; sendfile on; server { listen " << host.address
                                    << ":80; root " << root.string() << "; } }\n";
  processes.emplace_back(std::vector<std::string>{"/usr/sbin/nginx", "-c",
                                                  (dir / "nginx.conf").string(), "-p",
                                                  dir.string(), "-g", "daemon off;"},
                         process::options{.netns = host.netns, .output = dir / "out.log"});
  const bool serving = eventually(60s, [&] {
    return !http_get_in_netns(host.netns, host.address, 80, probe_path, 10s).empty();
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
                     const fs::path& config, const fs::path& log) {
  processes.emplace_back(std::vector<std::string>{LANRELAYD_PATH, "--config", config.string()},
                         process::options{.netns = host.netns, .output = log});
  return eventually(60s, [&] {
    return read_file(log).find("event=discovery_listening") != std::string::npos &&
           !http_get_in_netns(host.netns, host.address, 4127, "/-/healthz", 10s).empty();
  });
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

boost::json::object fetch_report(const std::string& log) {
  const auto start = log.find("{\"source\"");
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

}  // namespace lanrelay::test
