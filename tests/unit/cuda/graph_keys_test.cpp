// CUDA-graph batch buckets (backends/cuda/graph_keys.h).
#include <gtest/gtest.h>

#include <algorithm>

#include "graph_keys.h"

namespace moat::cuda {
namespace {

TEST(GraphKeys, DefaultBucketsEndAtMaxBatch) {
  EXPECT_EQ(graph_buckets::defaults(64).sizes,
            (std::vector<int32_t>{1, 2, 4, 8, 16, 24, 32, 48, 64}));
  EXPECT_EQ(graph_buckets::defaults(100).sizes.back(), 100);
  EXPECT_EQ(graph_buckets::defaults(1).sizes, (std::vector<int32_t>{1}));
  EXPECT_TRUE(graph_buckets::defaults(0).sizes.empty());
  const auto big = graph_buckets::defaults(512).sizes;
  EXPECT_TRUE(std::is_sorted(big.begin(), big.end()));
  EXPECT_EQ(std::adjacent_find(big.begin(), big.end()), big.end());
  EXPECT_LE(big.size(), 20u);  // captures cost memory and start-up time: keep them few
}

TEST(GraphKeys, EveryBatchGetsTheSmallestBucketThatHoldsIt) {
  const auto b = graph_buckets::defaults(256);
  EXPECT_EQ(b.bucket_for(0), -1);
  EXPECT_EQ(b.bucket_for(257), -1);
  for (int32_t n = 1; n <= 256; ++n) {
    const int32_t k = b.bucket_for(n);
    ASSERT_GE(k, n);
    for (int32_t s : b.sizes) ASSERT_TRUE(s < n || s >= k) << n;  // nothing smaller fits
    ASSERT_LT(k, 2 * n) << "padding doubles batch " << n;
  }
}

}  // namespace
}  // namespace moat::cuda
