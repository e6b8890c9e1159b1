// The host KV store's block ids (engine/kv_cache/swap_space.h).
#include "engine/kv_cache/swap_space.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace moat::engine::kv_cache {
namespace {

TEST(swap_space, hands_out_runs_all_or_nothing_and_takes_them_back) {
  swap_space s(6);
  EXPECT_EQ(s.total(), 6);
  auto a = s.take(4);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(s.used(), 4);
  EXPECT_FALSE(s.take(3));  // only 2 left: nothing taken
  EXPECT_EQ(s.available(), 2);
  s.give_back(std::vector<int32_t>{2, 0});
  auto b = s.take(3);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (std::vector<int32_t>{0, 2, 4}));  // lowest free ids first
  s.give_back(*b);
  s.give_back(std::vector<int32_t>{1, 3});
  EXPECT_EQ(s.available(), 6);
}

TEST(swap_space, a_block_given_back_twice_or_never_taken_throws) {
  swap_space s(2);
  auto a = s.take(1);
  ASSERT_TRUE(a);
  s.give_back(*a);
  EXPECT_THROW(s.give_back(*a), std::logic_error);
  EXPECT_THROW(s.give_back(std::vector<int32_t>{5}), std::logic_error);
  EXPECT_EQ(s.available(), 2);
}

TEST(swap_space, an_empty_store_takes_nothing_but_zero_blocks) {
  swap_space s(0);
  EXPECT_EQ(s.total(), 0);
  EXPECT_FALSE(s.take(1));
  auto none = s.take(0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace moat::engine::kv_cache
