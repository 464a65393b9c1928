// `lanrelay cache add` (and `key generate`) run as root on a state directory owned by the daemon's
// user write as that user: every file they create belongs to the owner, so the daemon (which does
// not run as root) can use them; a source file only root can read is still added.

#include "process.hpp"

#include "lanrelay/base/sha256.hpp"

#include <gtest/gtest.h>

#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class cache_owner_test : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root: the command changes user only when run as root";
    }
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr) << "no user 'nobody' on this machine";
    owner_uid_ = nobody->pw_uid;
    owner_gid_ = nobody->pw_gid;

    char pattern[] = "/tmp/lanrelay-owner.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    state_ = dir_ / "state";
    fs::create_directory(state_);
    ASSERT_EQ(::chown(state_.c_str(), owner_uid_, owner_gid_), 0);

    // Readable by root only, in a directory only root may enter.
    fs::create_directory(dir_ / "private");
    fs::permissions(dir_ / "private", fs::perms::owner_all);
    source_ = dir_ / "private" / "agent.msi";
    std::ofstream(source_) << std::string(100'000, 'x') << "agent";
    fs::permissions(source_, fs::perms::owner_read | fs::perms::owner_write);
  }

  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // Runs the command line tool to its end; its exit status (-1 when it was killed).
  int run_cli(std::vector<std::string> args) {
    args.insert(args.begin(), LANRELAY_CLI_PATH);
    process cli(args, process::options{.output = dir_ / "cli.log"});
    const auto status = cli.wait_for(30s);
    if (!status || !WIFEXITED(*status)) {
      return -1;
    }
    return WEXITSTATUS(*status);
  }

  fs::path dir_;
  fs::path state_;
  fs::path source_;
  uid_t owner_uid_ = 0;
  gid_t owner_gid_ = 0;
};

TEST_F(cache_owner_test, add_as_root_writes_as_the_state_directory_owner) {
  ASSERT_EQ(run_cli({"cache", "add", source_.string(), "--state-dir", state_.string(), "--kind",
                     "installer", "--name", "agent-x64", "--version", "14.0.1", "--log-level",
                     "info"}),
            0)
      << read_file(dir_ / "cli.log");
  EXPECT_NE(read_file(dir_ / "cli.log").find("event=running_as_owner user=nobody dir=" + state_.string()),
            std::string::npos)
      << read_file(dir_ / "cli.log");

  std::size_t entries = 0;
  bool object_found = false;
  for (const auto& entry : fs::recursive_directory_iterator(state_)) {
    struct ::stat st {};
    ASSERT_EQ(::lstat(entry.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, owner_uid_) << entry.path() << " belongs to uid " << st.st_uid;
    EXPECT_EQ(st.st_gid, owner_gid_) << entry.path() << " belongs to gid " << st.st_gid;
    object_found = object_found || entry.path().parent_path().filename() == "objects";
    ++entries;
  }
  EXPECT_GE(entries, 5U);  // cache/, index.json, lock, objects/<sha256>, tmp/
  EXPECT_TRUE(object_found);

  // Later commands (as root, again as the owner) see and change the item.
  ASSERT_EQ(run_cli({"cache", "pin", "--state-dir", state_.string(), "--kind", "installer",
                     "--name", "agent-x64", "--version", "14.0.1"}),
            0)
      << read_file(dir_ / "cli.log");
  ASSERT_EQ(run_cli({"cache", "list", "--json", "--state-dir", state_.string()}), 0);
  const std::string listed = read_file(dir_ / "cli.log");
  EXPECT_NE(listed.find("\"name\":\"agent-x64\""), std::string::npos) << listed;
  EXPECT_NE(listed.find("\"pinned\":true"), std::string::npos) << listed;
}

TEST_F(cache_owner_test, key_generated_as_root_into_the_state_directory_belongs_to_its_owner) {
  const fs::path key = state_ / "site.key";
  ASSERT_EQ(run_cli({"key", "generate", "--out", key.string()}), 0) << read_file(dir_ / "cli.log");
  struct ::stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, owner_uid_);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST_F(cache_owner_test, root_owned_state_directory_stays_root_owned) {
  ASSERT_EQ(::chown(state_.c_str(), 0, 0), 0);
  ASSERT_EQ(run_cli({"cache", "add", source_.string(), "--state-dir", state_.string(), "--kind",
                     "file", "--name", "agent", "--version", "1"}),
            0)
      << read_file(dir_ / "cli.log");
  struct ::stat st {};
  ASSERT_EQ(::stat((state_ / "cache" / "index.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0U);
}

}  // namespace
}  // namespace lanrelay::test
