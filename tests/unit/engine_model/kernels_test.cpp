// Kernels and helpers against scalar expectations: f16/bf16 conversion, dot determinism, the
// two RoPE layouts (equal under the HF q/k permutation), the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <random>

#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "engine/tensor.h"

namespace moat::test {
namespace {

TEST(kernels, f16_round_trip_and_special_values) {
  EXPECT_EQ(engine::f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(engine::f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(engine::f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(engine::f16_to_f32(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(engine::f16_to_f32(0x7c00)));
  for (uint32_t h = 0; h < 0x7c00; h += 7) EXPECT_EQ(engine::f32_to_f16(engine::f16_to_f32(static_cast<uint16_t>(h))), h);
  EXPECT_EQ(engine::bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(engine::f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // ties to even
}

TEST(kernels, dot_matches_double_and_is_order_stable) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> a(1000), b(1000);
  for (auto& x : a) x = nd(rng);
  for (auto& x : b) x = nd(rng);
  for (int64_t n : {1, 7, 8, 9, 100, 1000}) {
    double want = 0;
    for (int64_t i = 0; i < n; ++i) want += static_cast<double>(a[i]) * b[i];
    EXPECT_NEAR(cpu::dot(a.data(), b.data(), n), want, 1e-4 * std::sqrt(static_cast<double>(n)));
  }
}

TEST(kernels, matmul_rows_dispatches_on_dtype) {
  // W {3, 4} as f32 and as bf16 (exactly representable values), x {2, 4}.
  const std::vector<float> w = {1, 2, 3, 4, -1, 0.5f, 0, 2, 0, 0, 0, 1};
  std::vector<uint16_t> wb;
  for (float v : w) wb.push_back(static_cast<uint16_t>(std::bit_cast<uint32_t>(v) >> 16));
  const std::vector<float> x = {1, 1, 1, 1, 2, 0, -1, 0.5f};
  for (auto [type, data] : {std::pair{engine::dtype::f32, static_cast<const void*>(w.data())},
                            std::pair{engine::dtype::bf16, static_cast<const void*>(wb.data())}}) {
    engine::tensor t{"w", type, {3, 4}, data};
    std::vector<float> y(6), scratch(4);
    cpu::matmul_rows(t, x.data(), 2, y.data(), 3, 0, 3, scratch.data());
    EXPECT_EQ(y, (std::vector<float>{10, 1.5f, 1, 1, -1, 0.5f}));
  }
}

TEST(kernels, rope_layouts_agree_under_the_hf_permutation) {
  // HF's converter permutes q rows so that rotate-half on the permuted vector equals
  // adjacent-pair RoPE on the original: permuted[i] = orig[2i], permuted[i + d/2] = orig[2i+1].
  const int32_t d = 8;
  const float inv[4] = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<float> orig = {0.3f, -1.2f, 0.7f, 2.0f, -0.4f, 0.9f, 1.1f, -0.6f};
  std::vector<float> perm(d);
  for (int i = 0; i < d / 2; ++i) {
    perm[i] = orig[2 * i];
    perm[i + d / 2] = orig[2 * i + 1];
  }
  cpu::rope(orig.data(), d, 5, inv, engine::rope_style::adjacent_pairs);
  cpu::rope(perm.data(), d, 5, inv, engine::rope_style::rotate_half);
  for (int i = 0; i < d / 2; ++i) {
    EXPECT_FLOAT_EQ(perm[i], orig[2 * i]);
    EXPECT_FLOAT_EQ(perm[i + d / 2], orig[2 * i + 1]);
  }
  // Position 0 is the identity.
  std::vector<float> same = {1, 2, 3, 4, 5, 6, 7, 8};
  cpu::rope(same.data(), d, 0, inv, engine::rope_style::rotate_half);
  EXPECT_EQ(same, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(kernels, softmax_and_rmsnorm) {
  std::vector<float> x = {1, 2, 3};
  cpu::softmax(x.data(), 3);
  EXPECT_NEAR(x[0] + x[1] + x[2], 1.0f, 1e-6);
  EXPECT_NEAR(x[2] / x[1], std::exp(1.0f), 1e-5);
  const std::vector<float> v = {3, 4}, g = {1, 2};
  std::vector<float> out(2);
  cpu::rmsnorm(v.data(), g.data(), 0.0f, 2, out.data());
  const float rms = std::sqrt(12.5f);
  EXPECT_NEAR(out[0], 3 / rms, 1e-6);
  EXPECT_NEAR(out[1], 2 * 4 / rms, 1e-6);
}

TEST(thread_pool, covers_every_index_once_and_propagates_errors) {
  cpu::thread_pool pool(4);
  EXPECT_EQ(pool.size(), 4);
  for (int64_t n : {1, 3, 4, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(n, [&](int64_t b, int64_t e, int worker) {
      EXPECT_GE(worker, 0);
      EXPECT_LT(worker, 4);
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
  EXPECT_THROW(pool.parallel_for(100, [](int64_t b, int64_t, int) { if (b > 0) throw std::runtime_error("x"); }),
               std::runtime_error);
  std::atomic<int> calls = 0;
  pool.parallel_for(10, [&](int64_t b, int64_t e, int worker) {
    EXPECT_EQ(worker, 0);  // below min_chunk: one inline chunk
    EXPECT_EQ(e - b, 10);
    ++calls;
  }, 100);
  EXPECT_EQ(calls.load(), 1);
  int sum = 0;
  pool.parallel_for(1, [&](int64_t, int64_t, int) { sum = 1; });  // still usable after an error
  EXPECT_EQ(sum, 1);
}

}  // namespace
}  // namespace moat::test
