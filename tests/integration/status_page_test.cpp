// The status page in a real browser: headless Chromium (Debian `chromium`) opens / of a running
// lanrelayd, its DOM must hold the cached items, the transfer history and the chart, and a
// screenshot is kept as a test artifact (<build dir>/artifacts/status-page.png).
//
// Both the relay and the browser run inside a network namespace of their own (tests/support
// segment: a host whose only link is an isolated bridge), reached on 127.0.0.1 there: whatever
// the browser might try to contact on start-up, nothing can leave that namespace. Discovery is
// off as well.

#include "lanrelay/content/store.hpp"
#include "process.hpp"
#include "segment.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

#ifndef LANRELAY_ARTIFACT_DIR
#define LANRELAY_ARTIFACT_DIR "artifacts"
#endif

// The subnet of this test's segment; others use 77-79 and 90-91.
constexpr std::uint8_t browser_subnet = 96;

class status_page_browser : public testing::Test {
 protected:
  void SetUp() override {
    if (!segment::supported()) {
      GTEST_SKIP() << "the browser test needs root and iproute2 for its network namespace";
    }
    ASSERT_EQ(std::system("command -v chromium >/dev/null"), 0)
        << "chromium is not installed; run deploy/install-deps.sh";
    char pattern[] = "/tmp/lanrelay-browser.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    lan_ = std::make_unique<segment>(browser_subnet);
    host_ = &lan_->add_host("browser");
  }
  void TearDown() override {
    relay_.kill();
    lan_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  void add(content_store& store, item_key key, std::size_t size) {
    auto writer = store.begin_add(std::move(key));
    ASSERT_TRUE(writer);
    const std::string bytes(size, 'x');
    ASSERT_TRUE(writer->write(std::as_bytes(std::span(bytes.data(), bytes.size()))));
    ASSERT_TRUE(writer->commit(size, std::nullopt));
  }

  // Starts lanrelayd inside the namespace; returns its port.
  std::uint16_t start_relay() {
    const auto config = dir_ / "relayd.toml";
    std::ofstream(config) << "[discovery]\nenabled = false\n";
    const auto log = dir_ / "relayd.log";
    relay_ = process({LANRELAYD_PATH, "--config", config.string(), "--state-dir",
                      (dir_ / "state").string(), "--listen", "127.0.0.1", "--port", "0"},
                     process::options{.netns = host_->netns, .output = log});
    std::string text;
    EXPECT_TRUE(eventually(10s, [&] {
      text = read_file(log);
      return text.find("listening on ") != std::string::npos;
    })) << text;
    const auto at = text.find("listening on ");
    const auto line = text.substr(at, text.find('\n', at) - at);
    return static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  }

  // Runs headless Chromium in the namespace with `args`; returns its output (stdout and stderr).
  std::string chromium(const std::string& name, std::vector<std::string> args) {
    std::vector<std::string> argv{
        "/usr/bin/chromium", "--headless", "--no-sandbox",  // root in a container
        "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-breakpad", "--user-data-dir=" + (dir_ / ("profile-" + name)).string()};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto out = dir_ / (name + ".out");
    process browser(argv, process::options{.netns = host_->netns,
                                           .output = out,
                                           .environment = {"HOME=" + dir_.string()}});
    const auto status = browser.wait_for(60s);
    const std::string text = read_file(out);
    EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "chromium " << name << " failed:\n" << text;
    return text;
  }

  fs::path dir_;
  std::unique_ptr<segment> lan_;
  const segment::host* host_ = nullptr;
  process relay_;
};

TEST_F(status_page_browser, chromium_renders_the_cache_and_the_traffic_chart) {
  {
    auto store = content_store::open({dir_ / "state" / "cache", 0});
    ASSERT_TRUE(store);
    add(**store, {item_kind::installer, "agent-x64", "14.0.1234"}, 3 << 20);
    add(**store, {item_kind::pattern, "icrc", "16.679.00"}, 700 << 10);
    add(**store, {item_kind::file, "tools+extra", "2.1"}, 12345);
  }
  const auto port = start_relay();
  // Real downloads, so that the chart and the peer table have something to show.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(http_get_in_netns(host_->netns, "127.0.0.1", port,
                                "/cache/installer/agent-x64/14.0.1234")
                  .size(),
              3U << 20);
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";

  const auto dom = chromium("dom", {"--dump-dom", url});
  for (const char* expected :
       {"<svg id=\"traffic-chart\"", "class=\"served\"", "agent-x64", "14.0.1234", "icrc",
        "1667900", "tools+extra", "No mirror source is configured.", "<td>127.0.0.1</td>",
        "9.0 MiB"}) {
    EXPECT_NE(dom.find(expected), std::string::npos) << expected << " missing from:\n" << dom;
  }
  EXPECT_EQ(dom.find("<script"), std::string::npos);

  const fs::path artifacts = LANRELAY_ARTIFACT_DIR;
  fs::create_directories(artifacts);
  const auto shot = artifacts / "status-page.png";
  fs::remove(shot);
  chromium("screenshot", {"--window-size=1280,1400", "--hide-scrollbars",
                          "--screenshot=" + shot.string(), url});
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_GT(fs::file_size(shot), 20'000U);  // a blank page would compress to a few KiB
  std::ifstream png(shot, std::ios::binary);
  std::string magic(8, '\0');
  png.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");
}

}  // namespace
}  // namespace lanrelay::test
