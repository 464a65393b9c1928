#include "lanrelay/agent/catalog_memory.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

namespace lanrelay::agent {
namespace {

using namespace std::chrono_literals;

class catalog_memory_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-catalogs.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    key_.bytes.fill(std::byte{1});
    other_.bytes.fill(std::byte{2});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  public_key key_;
  public_key other_;
  const std::chrono::system_clock::time_point t0{std::chrono::seconds{1'750'000'000}};
};

TEST_F(catalog_memory_test, an_older_catalog_is_a_replay_for_its_key_only) {
  catalog_memory memory(dir_ / "state" / "catalogs.json");
  EXPECT_TRUE(memory.admits(key_, t0));
  memory.record(key_, t0 + 60s);

  // Another process (another instance on the same file) sees the mark.
  catalog_memory later(dir_ / "state" / "catalogs.json");
  EXPECT_FALSE(later.admits(key_, t0));
  EXPECT_FALSE(later.admits(key_, t0 + 59s));
  EXPECT_TRUE(later.admits(key_, t0 + 60s));  // the same catalog again
  EXPECT_TRUE(later.admits(key_, t0 + 61s));
  EXPECT_TRUE(later.admits(other_, t0));      // marks are per site key

  // The mark never goes back.
  later.record(key_, t0);
  EXPECT_FALSE(memory.admits(key_, t0 + 59s));
}

TEST_F(catalog_memory_test, an_unreadable_file_admits_and_is_rewritten) {
  const auto file = dir_ / "catalogs.json";
  std::ofstream(file) << "not json";
  catalog_memory memory(file);
  EXPECT_TRUE(memory.admits(key_, t0));
  memory.record(key_, t0);
  EXPECT_FALSE(memory.admits(key_, t0 - 1s));
}

}  // namespace
}  // namespace lanrelay::agent
