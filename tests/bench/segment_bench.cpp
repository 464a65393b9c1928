// Segment distribution: N agents in network namespaces fetch one item at once from a relay that
// holds it, every bridge port shaped (tc tbf). Run twice: agents as peers (each runs lanrelayd
// with role "peer" and fetches with --peer, so the segment distributes as a tree), and agents
// alone (a star: only the relay serves). Prints the time until the last agent is done, where the
// bytes came from and how many bytes the upstream served (goal: zero).
//
// Usage (root): bench_segment [AGENTS=50] [MIB=64] [RATE=1gbit]
// Everything runs in namespaces the benchmark builds and removes; it stops by itself.

#include "process.hpp"
#include "segment.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/store.hpp"

#include <boost/json.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using lanrelay::test::process;
using lanrelay::test::segment;

struct run_result {
  double last_done_s = 0;
  double median_s = 0;
  std::map<std::string, int> sources;
  int failures = 0;
  std::uint64_t upstream_bytes = 0;
};

std::uint64_t upstream_bytes_served(const fs::path& access_log) {
  // nginx "combined" format: ... "GET /x HTTP/1.1" 200 <bytes> ...
  std::ifstream in(access_log);
  std::uint64_t total = 0;
  for (std::string line; std::getline(in, line);) {
    const auto quote = line.find("\" ");
    if (quote == std::string::npos) {
      continue;
    }
    std::istringstream rest(line.substr(quote + 2));
    int status = 0;
    std::uint64_t bytes = 0;
    rest >> status >> bytes;
    total += bytes;
  }
  return total;
}

run_result run(bool peers, int agents, const fs::path& work, const fs::path& payload,
               const std::string& sha, std::uint64_t size, const std::string& rate) {
  segment lan(static_cast<std::uint8_t>(peers ? 90 : 91));
  std::deque<process> daemons;

  // Upstream nginx: only for agents that give up on the segment.
  const auto& upstream = lan.add_host("upstream");
  const fs::path nginx = work / (peers ? "nginx-tree" : "nginx-star");
  fs::create_directories(nginx);
  std::ofstream(nginx / "nginx.conf") << "user root;\nworker_processes 1;\npid " << (nginx / "pid").string()
                                      << ";\nerror_log " << (nginx / "error.log").string()
                                      << ";\nevents {}\nhttp { access_log " << (nginx / "access.log").string()
                                      << "; sendfile on; server { listen " << upstream.address
                                      << ":80; root " << payload.parent_path().string() << "; } }\n";
  daemons.emplace_back(std::vector<std::string>{"/usr/sbin/nginx", "-c", (nginx / "nginx.conf").string(),
                                                "-p", nginx.string(), "-g", "daemon off;"},
                       process::options{.netns = upstream.netns, .output = nginx / "out.log"});

  const auto start_daemon = [&](const segment::host& host, const std::string& role, bool holds) {
    const fs::path state = work / (std::string(peers ? "tree-" : "star-") + host.name);
    fs::create_directories(state);
    if (holds) {
      auto store = lanrelay::content_store::open({.dir = state / "cache"}).value();
      store->add_file(payload, {lanrelay::item_kind::file, "payload", "1"}).value();
    }
    std::ofstream(state / "lanrelayd.toml") << "[state]\ndir = \"" << state.string() << "\"\n[relay]\nrole = \""
                                            << role << "\"\n[peers]\nretry_after = \"1s\"\n[log]\nlevel = \"warn\"\n";
    daemons.emplace_back(std::vector<std::string>{LANRELAYD_PATH, "--config", (state / "lanrelayd.toml").string()},
                         process::options{.netns = host.netns, .output = state / "lanrelayd.log"});
    return state;
  };

  const auto& relay = lan.add_host("relay");
  start_daemon(relay, "relay", true);
  std::vector<const segment::host*> agent_hosts;
  std::vector<fs::path> agent_state;
  for (int i = 0; i < agents; ++i) {
    agent_hosts.push_back(&lan.add_host("agent" + std::to_string(i)));
    if (peers) {
      agent_state.push_back(start_daemon(*agent_hosts.back(), "peer", false));
    } else {
      agent_state.push_back(work / ("star-agent" + std::to_string(i)));
      fs::create_directories(agent_state.back());
    }
  }
  lan.shape_ports(rate);
  lanrelay::test::eventually(20s, [&] {
    return !lanrelay::test::http_get_in_netns(relay.netns, relay.address, 4127, "/-/healthz", 1s).empty();
  });
  std::this_thread::sleep_for(1s);  // every peer daemon bound its sockets

  const auto started = std::chrono::steady_clock::now();
  std::vector<process> fetches;
  for (int i = 0; i < agents; ++i) {
    std::vector<std::string> argv{LANRELAY_CLI_PATH, "fetch", "--kind", "file", "--name", "payload",
                                  "--version", "1", "--output", (agent_state[i] / "payload.bin").string(),
                                  "--sha256", sha, "--size", std::to_string(size), "--upstream",
                                  "http://" + upstream.address + "/payload.bin", "--state-dir",
                                  agent_state[i].string(), "--json", "--busy-patience", "240s"};
    if (peers) {
      argv.push_back("--peer");
    }
    fetches.emplace_back(argv, process::options{.netns = agent_hosts[i]->netns,
                                                .output = agent_state[i] / "fetch.out"});
  }
  run_result result;
  std::vector<double> done;
  std::vector<bool> finished(fetches.size(), false);
  std::size_t remaining = fetches.size();
  const auto deadline = started + 300s;
  while (remaining > 0 && std::chrono::steady_clock::now() < deadline) {
    for (std::size_t i = 0; i < fetches.size(); ++i) {
      if (finished[i]) {
        continue;
      }
      if (const auto status = fetches[i].wait_for(0ms)) {
        finished[i] = true;
        --remaining;
        done.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        const std::string out = lanrelay::test::read_file(agent_state[i] / "fetch.out");
        const auto brace = out.find("{\"source\"");
        if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0 || brace == std::string::npos) {
          ++result.failures;
          continue;
        }
        const auto report = json::parse(out.substr(brace, out.find('\n', brace) - brace)).as_object();
        ++result.sources[std::string(report.at("source").as_string())];
      }
    }
    std::this_thread::sleep_for(5ms);
  }
  result.failures += static_cast<int>(remaining);
  std::sort(done.begin(), done.end());
  result.last_done_s = done.empty() ? 0 : done.back();
  result.median_s = done.empty() ? 0 : done[done.size() / 2];
  result.upstream_bytes = upstream_bytes_served(nginx / "access.log");
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  if (!segment::supported()) {
    std::fprintf(stderr, "bench_segment: needs root, iproute2 and nftables\n");
    return 1;
  }
  const int agents = argc > 1 ? std::atoi(argv[1]) : 50;
  const std::uint64_t mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64;
  const std::string rate = argc > 3 ? argv[3] : "1gbit";

  char pattern[] = "/tmp/lanrelay-segment-bench.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path work = pattern;
  fs::create_directories(work / "www");
  const fs::path payload = work / "www" / "payload.bin";
  {
    std::mt19937_64 random(1);
    std::vector<std::uint64_t> block(1 << 17);
    std::ofstream out(payload, std::ios::binary);
    for (std::uint64_t i = 0; i < mib; ++i) {
      for (auto& w : block) {
        w = random();
      }
      out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(block.size() * 8));
    }
  }
  const std::uint64_t size = fs::file_size(payload);
  const std::string sha = lanrelay::to_hex(lanrelay::sha256_of_file(payload).value());

  const auto tree = run(true, agents, work, payload, sha, size, rate);
  const auto star = run(false, agents, work, payload, sha, size, rate);
  fs::remove_all(work);

  // tc rate units: kbit, mbit, gbit (decimal).
  const double bits_per_s = std::strtod(rate.c_str(), nullptr) *
                            (rate.ends_with("gbit") ? 1e9 : rate.ends_with("mbit") ? 1e6
                                                          : rate.ends_with("kbit") ? 1e3 : 0);
  const double round_s = bits_per_s > 0 ? static_cast<double>(size) * 8 / bits_per_s : 0;
  std::printf("%d agents, %llu MiB item, ports shaped to %s, at most 10 transfers per parent\n",
              agents, static_cast<unsigned long long>(mib), rate.c_str());
  std::printf("%-22s %10s %10s %8s %8s %10s %9s %s\n", "mode", "last done", "median", "relay",
              "peer", "upstream", "failures", "upstream bytes");
  for (const auto& [name, r] : {std::pair{"tree (agents as peers)", tree}, std::pair{"star (relay alone)", star}}) {
    std::printf("%-22s %9.2fs %9.2fs %8d %8d %10d %9d %llu\n", name, r.last_done_s, r.median_s,
                r.sources.count("relay") ? r.sources.at("relay") : 0,
                r.sources.count("peer") ? r.sources.at("peer") : 0,
                r.sources.count("upstream") ? r.sources.at("upstream") : 0, r.failures,
                static_cast<unsigned long long>(r.upstream_bytes));
  }
  if (round_s > 0) {
    std::printf("one transfer round (item at line rate): %.2fs; tree bound ~2 rounds, star ~%d rounds\n",
                round_s, (agents + 9) / 10);
  }
  return 0;
}
