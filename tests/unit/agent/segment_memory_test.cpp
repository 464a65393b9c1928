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
  memory.remember_silence("10.77.0.0/16", now, now + 10min);
  EXPECT_TRUE(memory.is_silent("10.77.0.0/16", now));
  EXPECT_TRUE(memory.is_silent("10.77.0.0/16", now + 9min));
  EXPECT_FALSE(memory.is_silent("10.77.0.0/16", now + 11min));
  EXPECT_FALSE(memory.is_silent("10.78.0.0/16", now));

  // Another process (another instance on the same file) sees it too.
  segment_memory other(dir_ / "state" / "segments.json");
  EXPECT_TRUE(other.is_silent("10.77.0.0/16", now));
  other.remember_answer("10.77.0.0/16", now + 10min);
  EXPECT_FALSE(memory.is_silent("10.77.0.0/16", now));
}

TEST_F(segment_memory_test, a_segment_that_answered_is_not_silenced_by_an_item_nobody_holds) {
  const auto now = segment_memory::clock::now();
  segment_memory memory(dir_ / "segments.json");
  memory.remember_answer("10.77.0.0/16", now + 10min);
  memory.remember_silence("10.77.0.0/16", now + 1min, now + 11min);
  EXPECT_FALSE(memory.is_silent("10.77.0.0/16", now + 1min));
  // Once the answer is forgotten, silence counts again.
  memory.remember_silence("10.77.0.0/16", now + 10min, now + 20min);
  EXPECT_TRUE(memory.is_silent("10.77.0.0/16", now + 15min));
}

TEST_F(segment_memory_test, the_earlier_format_still_reads_as_silence) {
  const auto now = segment_memory::clock::now();
  const auto until =
      std::chrono::duration_cast<std::chrono::seconds>((now + 5min).time_since_epoch()).count();
  std::ofstream(dir_ / "segments.json") << "{\"10.77.0.0/16\":" << until << "}";
  segment_memory memory(dir_ / "segments.json");
  EXPECT_TRUE(memory.is_silent("10.77.0.0/16", now));
}

TEST_F(segment_memory_test, a_damaged_file_means_nothing_is_remembered) {
  std::ofstream(dir_ / "segments.json") << "{not json";
  segment_memory memory(dir_ / "segments.json");
  const auto now = segment_memory::clock::now();
  EXPECT_FALSE(memory.is_silent("10.77.0.0/16", now));
  memory.remember_silence("10.77.0.0/16", now, now + 1min);
  EXPECT_TRUE(memory.is_silent("10.77.0.0/16", now));
}

}  // namespace
}  // namespace lanrelay::agent

namespace lanrelay::agent {
namespace {

TEST_F(segment_memory_test, relays_found_by_a_unicast_source_are_remembered_per_segment) {
  const auto now = segment_memory::clock::now();
  segment_memory memory(dir_ / "segments.json");
  EXPECT_FALSE(memory.unicast("10.78.0.0/16", now));
  memory.remember_unicast("10.78.0.0/16", "dns-sd", {"10.77.0.2:4126"}, now + 10min);
  const auto remembered = memory.unicast("10.78.0.0/16", now);
  ASSERT_TRUE(remembered);
  EXPECT_EQ(remembered->via, "dns-sd");
  EXPECT_EQ(remembered->relays, std::vector<std::string>{"10.77.0.2:4126"});
  EXPECT_FALSE(memory.is_silent("10.78.0.0/16", now));
  EXPECT_FALSE(memory.unicast("10.77.0.0/16", now));
  EXPECT_FALSE(memory.unicast("10.78.0.0/16", now + 11min));
  // Other updates of the entry keep it.
  memory.remember_answer("10.78.0.0/16", now + 10min);
  EXPECT_TRUE(memory.unicast("10.78.0.0/16", now));
}

}  // namespace
}  // namespace lanrelay::agent
