// Segment distribution: N agents in network namespaces fetch one item at once from a relay that
// holds it, every port shaped (tc tbf) in both directions, the relay's included, as a switch port
// carries R each way. Three modes:
//   star   agents alone (no peer daemon): only the relay serves;
//   tree   agents as peers (each runs lanrelayd with role "peer" and fetches with --peer), trusting
//          --sha256/--size (no piece list): a peer serves once it holds the whole item;
//   swarm  agents as peers trusting the relay's signed catalog (site key), so with its piece
//          list: pieces from several holders at once, served while downloading (issue 16).
// Prints, per mode, the time until the last agent is done (also as a multiple of S/R, the time
// one agent's downlink needs for the item), the median, the bytes agents got from the relay and
// from peers (their --json reports), and the bytes the upstream served (WAN: the relay holds the
// item from the start, so the WAN total is S plus this; goal: zero).
//
// Usage (root): bench_segment [AGENTS=50] [MIB=64] [RATE=1gbit] [MODES=star,tree,swarm]
// LANRELAY_BENCH_KEEP=1 keeps the work directory (the agents' reports and daemons' logs).
// Everything runs in namespaces the benchmark builds and removes; it stops by itself.

#include "process.hpp"
#include "segment.hpp"
#include "segment_fixture.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/store.hpp"

#include <boost/json.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using lanrelay::test::process;
using lanrelay::test::segment;

enum class mode { star, tree, swarm };

const char* name_of(mode m) {
  switch (m) {
    case mode::star: return "star";
    case mode::tree: return "tree";
    case mode::swarm: return "swarm";
  }
  return "?";
}

struct run_result {
  double last_done_s = 0;
  double median_s = 0;
  std::map<std::string, int> sources;
  int failures = 0;
  std::uint64_t upstream_bytes = 0;
  std::uint64_t relay_sent = 0;  // item bytes agents got from the relay (their reports)
  std::uint64_t peers_sent = 0;  // item bytes agents got from peers
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

run_result run(mode how, int agents, const fs::path& work, const fs::path& payload,
               const std::string& sha, std::uint64_t size, const std::string& rate) {
  const bool peers = how != mode::star;
  const std::string tag = name_of(how);
  segment lan(static_cast<std::uint8_t>(90 + static_cast<int>(how)));
  std::deque<process> daemons;

  // Upstream nginx: only for agents that give up on the segment.
  const auto& upstream = lan.add_host("upstream");
  const fs::path nginx = work / ("nginx-" + tag);
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
    const fs::path state = work / (tag + "-" + host.name);
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
  std::string site_key;
  if (how == mode::swarm) {
    const fs::path state = work / (tag + "-relay");
    fs::create_directories(state);
    site_key = lanrelay::test::generate_site_key(state / "site.key", work / (tag + "-key.out"));
  }
  start_daemon(relay, "relay", true);
  std::vector<const segment::host*> agent_hosts;
  std::vector<fs::path> agent_state;
  for (int i = 0; i < agents; ++i) {
    agent_hosts.push_back(&lan.add_host("agent" + std::to_string(i)));
    if (peers) {
      agent_state.push_back(start_daemon(*agent_hosts.back(), "peer", false));
    } else {
      agent_state.push_back(work / (tag + "-agent" + std::to_string(i)));
      fs::create_directories(agent_state.back());
    }
  }
  // Both ways: the switch's port towards each host, and each host's own uplink (the relay's too).
  lan.shape_ports(rate);
  for (const auto* host : agent_hosts) {
    lanrelay::test::run_checked("tc -n " + host->netns + " qdisc replace dev eth0 root tbf rate " + rate +
                                " burst 512k latency 50ms");
  }
  for (const auto* host : {&relay, &upstream}) {
    lanrelay::test::run_checked("tc -n " + host->netns + " qdisc replace dev eth0 root tbf rate " + rate +
                                " burst 512k latency 50ms");
  }
  lanrelay::test::eventually(20s, [&] {
    return !lanrelay::test::http_get_in_netns(relay.netns, relay.address, 4127, "/-/healthz", 1s).empty();
  });
  std::this_thread::sleep_for(1s);  // every peer daemon bound its sockets
  if (how == mode::swarm) {
    // The relay builds its piece list on first use: before the clock starts.
    lanrelay::test::http_get_in_netns(relay.netns, relay.address, 4127, "/-/catalog.signed", 60s);
  }

  const auto started = std::chrono::steady_clock::now();
  std::vector<process> fetches;
  for (int i = 0; i < agents; ++i) {
    std::vector<std::string> argv{LANRELAY_CLI_PATH, "fetch", "--kind", "file", "--name", "payload",
                                  "--version", "1", "--output", (agent_state[i] / "payload.bin").string(),
                                  "--upstream", "http://" + upstream.address + "/payload.bin", "--state-dir",
                                  agent_state[i].string(), "--json", "--busy-patience", "240s"};
    if (how == mode::swarm) {
      argv.insert(argv.end(), {"--site-key", site_key});
    } else {
      argv.insert(argv.end(), {"--sha256", sha, "--size", std::to_string(size)});
    }
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
        const std::string source(report.at("source").as_string());
        ++result.sources[source];
        // Bytes by kind of holder: a swarm's report counts them; otherwise one source sent all.
        const auto relay_bytes = report.contains("relay_bytes") ? report.at("relay_bytes").to_number<std::uint64_t>() : 0;
        const auto peer_bytes = report.contains("peer_bytes") ? report.at("peer_bytes").to_number<std::uint64_t>() : 0;
        if (relay_bytes + peer_bytes > 0) {
          result.relay_sent += relay_bytes;
          result.peers_sent += peer_bytes;
        } else if (source == "relay") {
          result.relay_sent += size;
        } else if (source == "peer") {
          result.peers_sent += size;
        }
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
  const std::string modes = argc > 4 ? argv[4] : "star,tree,swarm";

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

  std::vector<std::pair<mode, run_result>> results;
  for (const mode m : {mode::star, mode::tree, mode::swarm}) {
    if (modes.find(name_of(m)) != std::string::npos) {
      results.emplace_back(m, run(m, agents, work, payload, sha, size, rate));
    }
  }
  if (std::getenv("LANRELAY_BENCH_KEEP") != nullptr) {
    std::printf("kept: %s (each agent's fetch.out and lanrelayd.log under it)\n", work.c_str());
  } else {
    fs::remove_all(work);
  }

  // tc rate units: kbit, mbit, gbit (decimal).
  const double bits_per_s = std::strtod(rate.c_str(), nullptr) *
                            (rate.ends_with("gbit") ? 1e9 : rate.ends_with("mbit") ? 1e6
                                                          : rate.ends_with("kbit") ? 1e3 : 0);
  const double round_s = bits_per_s > 0 ? static_cast<double>(size) * 8 / bits_per_s : 0;
  double load[3] = {};
  ::getloadavg(load, 3);
  std::printf("%d agents, %llu MiB item (S), every port shaped to %s (R) both ways; S/R = %.2fs; "
              "load average at the end %.1f %.1f %.1f\n",
              agents, static_cast<unsigned long long>(mib), rate.c_str(), round_s, load[0], load[1],
              load[2]);
  std::printf("%-6s %9s %7s %9s %7s %9s %9s %9s %5s %5s %5s %4s\n", "mode", "last", "xS/R",
              "median", "xS/R", "relay xS", "peers xS", "WAN xS", "relay", "peer", "upstr", "fail");
  const auto share = [&](std::uint64_t bytes) { return static_cast<double>(bytes) / static_cast<double>(size); };
  for (const auto& [m, r] : results) {
    const auto count = [&](const char* source) { return r.sources.count(source) ? r.sources.at(source) : 0; };
    std::printf("%-6s %8.2fs %7.2f %8.2fs %7.2f %9.2f %9.2f %9.2f %5d %5d %5d %4d\n", name_of(m),
                r.last_done_s, round_s > 0 ? r.last_done_s / round_s : 0, r.median_s,
                round_s > 0 ? r.median_s / round_s : 0, share(r.relay_sent), share(r.peers_sent),
                share(r.upstream_bytes), count("relay"), count("peer"), count("upstream"), r.failures);
  }
  std::printf("relay/peer/upstr: agents whose report names that source (swarm: the source of most "
              "of their bytes)\n");
  return 0;
}
