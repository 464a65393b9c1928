// Proxy resolution time: from an agent's start of resolution to a working proxy, measured by
// `lanrelay proxy resolve --json` (its elapsed_ms) in network namespaces:
//
//   internet (10.78/16): www (nginx, https with a self-signed certificate)
//   lan      (10.77/16): proxy1, proxy2 (tinyproxy, also on the internet segment), helper
//                        (proxyhelperd advertising proxy1 then proxy2), agent
//
// The agent has no route to the internet: step 1 (direct) fails at once, step 2 asks the segment
// by broadcast, step 3 checks the advertised proxies through a CONNECT tunnel and TLS. Three
// cases, RUNS resolutions each: both proxies up; proxy1 down but still advertised (the helper
// has not checked it again yet: the agent's check is refused and it moves to proxy2); proxy1
// down and no longer advertised.
//
// Usage (root): bench_proxy [RUNS=100]
// Everything runs in namespaces the benchmark builds and removes; it stops by itself.

#include "process.hpp"
#include "segment.hpp"

#include <boost/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using lanrelay::test::eventually;
using lanrelay::test::process;
using lanrelay::test::read_file;
using lanrelay::test::run_checked;
using lanrelay::test::segment;

bool can_connect(const std::string& netns, const std::string& address, std::uint16_t port) {
  const int fd = lanrelay::test::socket_in_netns(netns, AF_INET, SOCK_STREAM);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  if (fd >= 0) {
    ::close(fd);
  }
  return ok;
}

std::size_t healthy(const segment::host& helper) {
  boost::system::error_code ec;
  const auto stats =
      json::parse(lanrelay::test::http_get_in_netns(helper.netns, "127.0.0.1", 4130, "/-/stats"), ec);
  std::size_t n = 0;
  if (!ec && stats.is_object()) {
    for (const auto& p : stats.as_object().at("proxies").as_array()) {
      n += p.as_object().at("healthy").as_bool() ? 1 : 0;
    }
  }
  return n;
}

struct figures {
  double median_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  int failures = 0;
  std::string proxy;
};

figures measure(const segment::host& agent, const std::vector<std::string>& args, int runs,
                const fs::path& work) {
  std::vector<double> elapsed;
  figures f;
  for (int i = 0; i < runs; ++i) {
    const fs::path out = work / "resolve.out";
    fs::remove(out);  // process output appends
    process p(args, process::options{.netns = agent.netns, .output = out});
    const auto status = p.wait_for(30s);
    const auto text = read_file(out);
    boost::system::error_code ec;
    const auto value = json::parse(text.substr(0, text.find('\n')), ec);
    if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0 || ec || !value.is_object()) {
      ++f.failures;
      std::fprintf(stderr, "run %d failed: %s\n", i, text.c_str());
      continue;
    }
    elapsed.push_back(value.as_object().at("elapsed_ms").to_number<double>());
    f.proxy = value.as_object().at("proxy").as_string().c_str();
  }
  std::sort(elapsed.begin(), elapsed.end());
  if (!elapsed.empty()) {
    f.median_ms = elapsed[elapsed.size() / 2];
    f.p99_ms = elapsed[std::min(elapsed.size() - 1, (elapsed.size() * 99 + 99) / 100 - 1)];
    f.max_ms = elapsed.back();
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 100;
  if (!segment::supported()) {
    std::fprintf(stderr, "bench_proxy needs root, iproute2 and nftables\n");
    return 1;
  }
  char pattern[] = "/tmp/lanrelay-proxy-bench.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    return 1;
  }
  const fs::path work = pattern;
  int exit_code = 0;
  {
    segment internet(78);
    segment lan(77);
    std::deque<process> running;

    const auto& www = internet.add_host("www");
    fs::create_directories(work / "www" / "root");
    run_checked("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
                "-subj /CN=www -addext subjectAltName=IP:" + www.address + " -keyout " +
                (work / "www" / "key.pem").string() + " -out " + (work / "www" / "cert.pem").string() +
                " 2>/dev/null");
    std::ofstream(work / "www" / "root" / "probe.txt") << "ok\n";
    std::ofstream(work / "www" / "nginx.conf")
        << "user root;\nmaster_process off;\nworker_processes 1;\npid " << (work / "www" / "nginx.pid").string()
        << ";\nerror_log " << (work / "www" / "error.log").string() << ";\nevents { worker_connections 256; }\n"
        << "http { access_log off; client_body_temp_path " << (work / "www" / "body").string() << ";\n"
        << "  proxy_temp_path " << (work / "www" / "proxy").string() << "; fastcgi_temp_path "
        << (work / "www" / "fastcgi").string() << "; uwsgi_temp_path " << (work / "www" / "uwsgi").string()
        << "; scgi_temp_path " << (work / "www" / "scgi").string() << ";\n"
        << "  server { listen " << www.address << ":443 ssl; ssl_certificate "
        << (work / "www" / "cert.pem").string() << "; ssl_certificate_key "
        << (work / "www" / "key.pem").string() << "; root " << (work / "www" / "root").string() << "; } }\n";
    running.emplace_back(std::vector<std::string>{"/usr/sbin/nginx", "-c", (work / "www" / "nginx.conf").string(),
                                                  "-p", (work / "www").string() + "/", "-g", "daemon off;"},
                         process::options{.netns = www.netns, .output = work / "www" / "out.log"});

    std::vector<const segment::host*> proxies;
    std::vector<process*> proxy_processes;
    for (const std::string name : {"proxy1", "proxy2"}) {
      const auto& host = lan.add_host(name);
      internet.attach(host);
      fs::create_directories(work / name);
      std::ofstream(work / name / "tinyproxy.conf")
          << "Port 3128\nTimeout 30\nMaxClients 64\nAllow 10.77.0.0/16\nConnectPort 443\nLogLevel Warning\n"
          << "PidFile \"" << (work / name / "tinyproxy.pid").string() << "\"\n";
      running.emplace_back(std::vector<std::string>{"/usr/bin/tinyproxy", "-d", "-c",
                                                    (work / name / "tinyproxy.conf").string()},
                           process::options{.netns = host.netns, .output = work / name / "out.log"});
      proxies.push_back(&host);
      proxy_processes.push_back(&running.back());
      eventually(10s, [&] { return can_connect(host.netns, host.address, 3128); });
    }

    // The helper checks every 200 ms for cases 1 and 3; case 2 needs it not to notice proxy1 is
    // gone, so a second helper configuration checks once an hour.
    const auto& helper = lan.add_host("helper");
    const auto start_helper = [&](const std::string& interval, std::size_t expect_healthy) -> std::string {
      const fs::path dir = work / ("helper-" + interval);
      fs::create_directories(dir);
      std::ofstream(dir / "proxyhelperd.toml")
          << "[state]\ndir = \"" << (work / "helper-state").string() << "\"\n"
          << "[query]\nrate_limit = 1000\n"
          << "[health]\nprobe_url = \"https://" << www.address << "/probe.txt\"\ninterval = \"" << interval
          << "\"\ntimeout = \"1s\"\nca_file = \"" << (work / "www" / "cert.pem").string() << "\"\n"
          << "[[proxy]]\nurl = \"http://" << proxies[0]->address << ":3128\"\npriority = 10\n"
          << "[[proxy]]\nurl = \"http://" << proxies[1]->address << ":3128\"\npriority = 20\n";
      running.emplace_back(std::vector<std::string>{PROXYHELPERD_PATH, "--config",
                                                    (dir / "proxyhelperd.toml").string()},
                           process::options{.netns = helper.netns, .output = dir / "out.log"});
      eventually(10s, [&] { return read_file(dir / "out.log").find("listening on udp") != std::string::npos; });
      eventually(10s, [&] { return healthy(helper) == expect_healthy; });
      const auto text = read_file(dir / "out.log");
      const auto at = text.find("public key lanrelay-ed25519:");
      return at == std::string::npos ? std::string() : text.substr(at + 11, text.find('\n', at) - at - 11);
    };
    const auto key = start_helper("200ms", 2);
    const auto& agent = lan.add_host("agent");
    const std::vector<std::string> args{LANRELAY_CLI_PATH, "proxy", "resolve",
                                        "https://" + www.address + "/probe.txt", "--json",
                                        "--ca-file", (work / "www" / "cert.pem").string(),
                                        "--proxy-key", key, "--check-timeout", "2s"};

    const auto up = measure(agent, args, runs, work);

    // Case 2: proxy1 down, still advertised by a helper that checks once an hour.
    running.back().kill();  // the 200 ms helper
    start_helper("1h", 2);
    proxy_processes[0]->kill();
    const auto down_advertised = measure(agent, args, runs, work);

    // Case 3: proxy1 down and noticed.
    running.back().kill();
    start_helper("200ms", 1);
    const auto down_noticed = measure(agent, args, runs, work);

    std::printf("%d resolutions per case (elapsed_ms of lanrelay proxy resolve)\n", runs);
    std::printf("| case | median | p99 | max | chosen | failures |\n| --- | ---: | ---: | ---: | --- | ---: |\n");
    const auto row = [](const char* name, const figures& f) {
      std::printf("| %s | %.0f ms | %.0f ms | %.0f ms | %s | %d |\n", name, f.median_ms, f.p99_ms, f.max_ms,
                  f.proxy.c_str(), f.failures);
    };
    row("both proxies up", up);
    row("proxy1 down, still advertised", down_advertised);
    row("proxy1 down, no longer advertised", down_noticed);
    exit_code = up.failures + down_advertised.failures + down_noticed.failures == 0 ? 0 : 1;
  }
  fs::remove_all(work);
  return exit_code;
}
