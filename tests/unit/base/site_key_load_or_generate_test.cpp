#include "lanrelay/base/site_key.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;

class site_key_load_or_generate : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-key.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(site_key_load_or_generate, creates_once_then_loads_the_same_key) {
  bool created = false;
  const auto first = site_key::load_or_generate(dir_ / "proxy.key", &created);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(created);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "proxy.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const auto second = site_key::load_or_generate(dir_ / "proxy.key", &created);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(created);
  EXPECT_EQ(second->public_key(), first->public_key());
}

TEST_F(site_key_load_or_generate, refuses_an_insecure_existing_file) {
  ASSERT_TRUE(site_key::load_or_generate(dir_ / "proxy.key"));
  fs::permissions(dir_ / "proxy.key", fs::perms::group_read, fs::perm_options::add);
  const auto loaded = site_key::load_or_generate(dir_ / "proxy.key");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, trust_errc::insecure_key_file);
}

TEST_F(site_key_load_or_generate, reports_a_missing_directory) {
  const auto loaded = site_key::load_or_generate(dir_ / "missing" / "proxy.key");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("missing"), std::string::npos) << loaded.error().message;
}

}  // namespace
}  // namespace lanrelay
