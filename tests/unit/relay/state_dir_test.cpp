// The state directory of a process without HOME (base/state_dir.hpp, find_default_state_dir): the
// /tmp fallback is a shared name that another user may create first, so it is used only when it
// is a directory of ours with mode 0700. Each case runs in a child process that has become an
// unprivileged user (root always gets /var/lib/lanrelay).

#include "lanrelay/base/state_dir.hpp"
#include "lanrelay/relay/config.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;

constexpr uid_t nobody = 65534;

struct choice_text {
  std::string dir;
  std::string problem;
};

// find_default_state_dir() as `nobody` with only the given variables of the ones it reads.
choice_text choose_as_nobody(const std::string& tmpdir, const std::string& runtime_dir = "") {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    for (const char* name : {"HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "TMPDIR"}) {
      ::unsetenv(name);
    }
    ::setenv("TMPDIR", tmpdir.c_str(), 1);
    if (!runtime_dir.empty()) {
      ::setenv("XDG_RUNTIME_DIR", runtime_dir.c_str(), 1);
    }
    if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) {
      ::_exit(3);
    }
    const auto choice = find_default_state_dir();
    const std::string text = choice.dir.string() + '\n' + choice.problem;
    (void)!::write(fds[1], text.data(), text.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[1024];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) {
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  const auto newline = text.find('\n');
  if (newline == std::string::npos) {
    return {};
  }
  return {text.substr(0, newline), text.substr(newline + 1)};
}

class state_dir_fallback : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root to become another user";
    }
    char pattern[] = "/tmp/lanrelay-statedir.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    tmp_ = pattern;
    ::chmod(tmp_.c_str(), 01777);  // shared, like /tmp
    mine_ = tmp_ / ("lanrelay-" + std::to_string(nobody));
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(tmp_, ignored);
  }
  fs::path tmp_;
  fs::path mine_;
};

TEST_F(state_dir_fallback, creates_a_private_directory_when_none_exists) {
  const auto chosen = choose_as_nobody(tmp_.string());
  EXPECT_EQ(chosen.problem, "");
  EXPECT_EQ(chosen.dir, mine_.string());
  struct ::stat st{};
  ASSERT_EQ(::lstat(mine_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_uid, nobody);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // The second time, the same directory is accepted.
  EXPECT_EQ(choose_as_nobody(tmp_.string()).dir, mine_.string());
}

TEST_F(state_dir_fallback, refuses_a_directory_another_user_made_first) {
  ASSERT_EQ(::mkdir(mine_.c_str(), 0777), 0);  // root's, open to all
  const auto chosen = choose_as_nobody(tmp_.string());
  EXPECT_EQ(chosen.dir, "");
  EXPECT_NE(chosen.problem.find("belongs to uid 0"), std::string::npos) << chosen.problem;
}

TEST_F(state_dir_fallback, refuses_our_directory_when_others_can_enter_it) {
  ASSERT_EQ(::mkdir(mine_.c_str(), 0755), 0);
  ASSERT_EQ(::chown(mine_.c_str(), nobody, nobody), 0);
  ASSERT_EQ(::chmod(mine_.c_str(), 0755), 0);
  const auto chosen = choose_as_nobody(tmp_.string());
  EXPECT_EQ(chosen.dir, "");
  EXPECT_NE(chosen.problem.find("mode 0755"), std::string::npos) << chosen.problem;
}

TEST_F(state_dir_fallback, refuses_a_symbolic_link) {
  const fs::path target = tmp_ / "elsewhere";
  ASSERT_EQ(::mkdir(target.c_str(), 0700), 0);
  ASSERT_EQ(::chown(target.c_str(), nobody, nobody), 0);
  fs::create_directory_symlink(target, mine_);
  ASSERT_EQ(::lchown(mine_.c_str(), nobody, nobody), 0);
  const auto chosen = choose_as_nobody(tmp_.string());
  EXPECT_EQ(chosen.dir, "");
  EXPECT_NE(chosen.problem.find("not a directory"), std::string::npos) << chosen.problem;
}

TEST_F(state_dir_fallback, prefers_the_runtime_directory) {
  const auto chosen = choose_as_nobody(tmp_.string(), "/run/user/65534");
  EXPECT_EQ(chosen.problem, "");
  EXPECT_EQ(chosen.dir, "/run/user/65534/lanrelay");
  EXPECT_FALSE(fs::exists(mine_));
}

// The configuration loader and the built-in defaults report the refusal as a diagnostic, naming
// what to do.
TEST_F(state_dir_fallback, default_state_dir_throws_the_refusal) {
  ASSERT_EQ(::mkdir(mine_.c_str(), 0777), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::unsetenv("HOME");
    ::unsetenv("XDG_STATE_HOME");
    ::unsetenv("XDG_RUNTIME_DIR");
    ::setenv("TMPDIR", tmp_.c_str(), 1);
    if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) {
      ::_exit(3);
    }
    try {
      (void)default_state_dir();
    } catch (const state_dir_refused&) {
      const auto loaded = parse_relay_config("", "relay.toml");
      if (loaded.ok()) {
        ::_exit(4);
      }
      // lanrelayd without --config: a diagnostic, not an exception that ends in std::terminate.
      const auto defaults = default_relay_config();
      ::_exit(defaults.diagnostics.size() == 1 && defaults.config.state_dir.empty() &&
                      defaults.diagnostics[0].to_string().find("belongs to uid 0") !=
                          std::string::npos &&
                      defaults.diagnostics[0].to_string().find("--state-dir") != std::string::npos
                  ? 0
                  : 6);
    }
    ::_exit(5);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace lanrelay
