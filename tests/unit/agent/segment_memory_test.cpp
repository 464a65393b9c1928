#include "lanrelay/agent/segment_memory.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace lanrelay::agent {
namespace {

using namespace std::chrono_literals;

class segment_memory_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-segmem.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(segment_memory_test, silence_is_remembered_until_it_expires) {
  const auto now = segment_memory::clock::now();
  segment_memory memory(dir_ / "state" / "segments.json");
  EXPECT_FALSE(memory.is_silent("10.77.0.0/16", now));
  memory.remember_silence("10.77.0.0/16", now + 10min);
  EXPECT_TRUE(memory.is_silent("10.77.0.0/16", now));
  EXPECT_TRUE(memory.is_silent("10.77.0.0/16", now + 9min));
  EXPECT_FALSE(memory.is_silent("10.77.0.0/16", now + 11min));
  EXPECT_FALSE(memory.is_silent("10.78.0.0/16", now));

  // Another process (another instance on the same file) sees it too.
  segment_memory other(dir_ / "state" / "segments.json");
  EXPECT_TRUE(other.is_silent("10.77.0.0/16", now));
  other.forget("10.77.0.0/16");
  EXPECT_FALSE(memory.is_silent("10.77.0.0/16", now));
}

TEST_F(segment_memory_test, a_damaged_file_means_nothing_is_remembered) {
  std::ofstream(dir_ / "segments.json") << "{not json";
  segment_memory memory(dir_ / "segments.json");
  const auto now = segment_memory::clock::now();
  EXPECT_FALSE(memory.is_silent("10.77.0.0/16", now));
  memory.remember_silence("10.77.0.0/16", now + 1min);
  EXPECT_TRUE(memory.is_silent("10.77.0.0/16", now));
}

}  // namespace
}  // namespace lanrelay::agent
