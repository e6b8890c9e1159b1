// rmsnorm_rows (8 rows' sums of squares in flight) against rmsnorm row by row: the same bits,
// for row counts below, at and past a multiple of 8 and row lengths that are not.
#include <gtest/gtest.h>

#include <bit>
#include <random>
#include <vector>

#include "cpu/kernels.h"

namespace moat::cpu {
namespace {

TEST(rmsnorm_rows, same_bits_as_rmsnorm_per_row) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (const int64_t n : {1, 7, 64, 128, 130}) {
    for (const int64_t rows : {1, 5, 8, 9, 16, 23}) {
      std::vector<float> x(static_cast<size_t>(rows * n)), w(static_cast<size_t>(n));
      for (float& v : x) v = nd(rng);
      for (float& v : w) v = nd(rng);
      std::vector<float> want(x.size()), got(x.size(), -1.0f);
      for (int64_t r = 0; r < rows; ++r)
        rmsnorm(x.data() + r * n, w.data(), 1e-6f, n, want.data() + r * n);
      rmsnorm_rows(x.data(), w.data(), 1e-6f, n, rows, got.data());
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
            << "n " << n << " rows " << rows << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace moat::cpu
