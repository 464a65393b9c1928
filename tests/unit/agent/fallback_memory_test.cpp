#include "lanrelay/agent/fallback_memory.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace lanrelay::agent {
namespace {

using discovery::fallback_count;
using discovery::fallback_reason;

class fallback_memory_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-fallback-memory.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    file_ = dir_ / "state" / "fallbacks.json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::filesystem::path file_;
};

TEST_F(fallback_memory_test, records_survive_a_new_instance_and_are_reported_in_code_order) {
  EXPECT_TRUE(fallback_memory(file_).pending().empty());
  fallback_memory(file_).record(fallback_reason::holders_busy);
  fallback_memory(file_).record(fallback_reason::segment_silent);
  fallback_memory(file_).record(fallback_reason::segment_silent);
  const fallback_memory memory(file_);
  EXPECT_EQ(memory.pending(), (std::vector<fallback_count>{{fallback_reason::segment_silent, 2},
                                                           {fallback_reason::holders_busy, 1}}));
}

TEST_F(fallback_memory_test, settling_subtracts_what_was_reported) {
  fallback_memory memory(file_);
  memory.record(fallback_reason::segment_silent);
  const auto reported = memory.pending();
  memory.record(fallback_reason::segment_silent);  // another run, while the query was out
  memory.record(fallback_reason::holders_failed);
  memory.settle(reported);
  EXPECT_EQ(memory.pending(), (std::vector<fallback_count>{{fallback_reason::segment_silent, 1},
                                                           {fallback_reason::holders_failed, 1}}));
  memory.settle(memory.pending());
  EXPECT_TRUE(memory.pending().empty());
}

TEST_F(fallback_memory_test, counts_stop_at_the_bound) {
  std::filesystem::create_directories(file_.parent_path());
  std::ofstream(file_) << "{\"nothing_found\": 5000000, \"untrusted_offers\": -3, \"other\": 7}";
  fallback_memory memory(file_);
  memory.record(fallback_reason::nothing_found);
  EXPECT_EQ(memory.pending(), (std::vector<fallback_count>{
                                  {fallback_reason::nothing_found, discovery::max_reported_fallbacks}}));
}

TEST_F(fallback_memory_test, an_unreadable_file_counts_nothing_and_is_rewritten) {
  std::filesystem::create_directories(file_.parent_path());
  std::ofstream(file_) << "not json";
  fallback_memory memory(file_);
  EXPECT_TRUE(memory.pending().empty());
  memory.record(fallback_reason::untrusted_offers);
  EXPECT_EQ(memory.pending(),
            (std::vector<fallback_count>{{fallback_reason::untrusted_offers, 1}}));
}

}  // namespace
}  // namespace lanrelay::agent
