// kill -9 of `lanrelay cache add` at many moments leaves no partial item: the store holds whole,
// verified files only, and everything committed before the kill is still found.

#include "lanrelay/content/store.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class cache_crash : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-crash.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    payload_ = dir_ / "payload.bin";
    std::mt19937_64 random(42);
    std::vector<std::uint64_t> block(1 << 17);  // 1 MiB
    std::ofstream out(payload_, std::ios::binary);
    for (int i = 0; i < 48; ++i) {
      for (auto& word : block) {
        word = random();
      }
      out.write(reinterpret_cast<const char*>(block.data()),
                static_cast<std::streamsize>(block.size() * sizeof(std::uint64_t)));
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Starts `lanrelay cache add` for version `version`; returns its pid.
  pid_t start_add(const std::string& version) {
    const std::string state = (dir_ / "state").string();
    const std::string file = payload_.string();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::execl(LANRELAY_CLI_PATH, LANRELAY_CLI_PATH, "cache", "add", "--state-dir", state.c_str(),
              file.c_str(), "--kind", "file", "--name", "payload", "--version", version.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid;
  }

  static int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  }

  fs::path dir_;
  fs::path payload_;
};

TEST_F(cache_crash, kill_during_add_leaves_only_whole_verified_items) {
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(wait_exit(start_add("committed")), 0);
  const auto full_add = std::chrono::steady_clock::now() - started;

  const auto expected = sha256_of_file(payload_);
  ASSERT_TRUE(expected);

  // Spread the kills over the whole duration of an add, from the first instant to past its end.
  constexpr int kills = 12;
  int killed_before_commit = 0;
  for (int i = 0; i < kills; ++i) {
    const pid_t pid = start_add("v" + std::to_string(i));
    std::this_thread::sleep_for(full_add * i / (kills - 2));
    ::kill(pid, SIGKILL);
    const int status = wait_exit(pid);
    if (WIFSIGNALED(status)) {
      ++killed_before_commit;
    }

    auto store = content_store::open({.dir = dir_ / "state" / "cache"});
    ASSERT_TRUE(store) << store.error().message();
    const auto items = (*store)->list();
    bool committed_found = false;
    for (const item& it : items) {
      EXPECT_EQ(it.size, fs::file_size(payload_));
      EXPECT_EQ(it.sha256, *expected);
      auto file = (*store)->open_item(it.key);
      ASSERT_TRUE(file) << it.key.version;
      committed_found = committed_found || it.key.version == "committed";
    }
    EXPECT_TRUE(committed_found) << "the item committed before the kills is gone";
    for (const auto& entry : fs::directory_iterator(dir_ / "state" / "cache" / "objects")) {
      const auto digest = sha256_of_file(entry.path());
      ASSERT_TRUE(digest);
      EXPECT_EQ(to_hex(*digest), entry.path().filename().string()) << "partial object left behind";
    }
    EXPECT_TRUE(fs::is_empty(dir_ / "state" / "cache" / "tmp"));
  }
  EXPECT_GT(killed_before_commit, 0) << "no add was interrupted; the test proved nothing";
}

}  // namespace
}  // namespace lanrelay
