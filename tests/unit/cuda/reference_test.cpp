// The kernels' scalar references (kernels/reference) against the engine: weight layouts
// against backends/engine/quant's dequantizers, rmsnorm/rope/swiglu against the CPU kernels,
// paged attention independent of the block placement, and the sampling rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "cpu/kernels.h"
#include "engine/quant/fp16.h"
#include "engine/quant/int4.h"
#include "engine/quant/int8.h"
#include "engine/quant/nf4.h"
#include "kernels/reference/reference.h"

namespace moat::kernels {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(KernelReference, F16AndBf16Elements) {
  const int64_t rows = 3, cols = 7;
  auto x = randn(rows * cols, 1);
  std::vector<uint16_t> h(x.size()), b(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    h[i] = engine::quant::fp32_to_fp16(x[i]);
    uint32_t bits;
    std::memcpy(&bits, &x[i], 4);
    b[i] = static_cast<uint16_t>(bits >> 16);
  }
  gemv_weights wh{weight_format::f16, rows, cols, h.data()};
  gemv_weights wb{weight_format::bf16, rows, cols, b.data()};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      EXPECT_EQ(reference::weight_at(wh, r, c), engine::quant::fp16_to_fp32(h[r * cols + c]));
      EXPECT_NEAR(reference::weight_at(wb, r, c), x[r * cols + c], std::fabs(x[r * cols + c]) / 64);
    }
}

TEST(KernelReference, Int8LayoutIsTheEngines) {
  const size_t rows = 4, cols = 45;
  auto x = randn(rows * cols, 2);
  auto m = engine::quant::quantize_int8_channel(x.data(), rows, cols);
  std::vector<float> deq(rows * cols);
  engine::quant::dequantize_int8_channel(m, deq.data());
  gemv_weights w{weight_format::int8, int64_t(rows), int64_t(cols), m.q.data(), m.scales.data()};
  for (size_t i = 0; i < rows * cols; ++i) EXPECT_EQ(reference::weight_at(w, i / cols, i % cols), deq[i]);
}

TEST(KernelReference, Int8WithScalePer32) {
  const int64_t rows = 3, cols = 64;
  std::vector<int8_t> q(rows * cols);
  for (size_t i = 0; i < q.size(); ++i) q[i] = int8_t(int(i * 37 % 255) - 127);
  std::vector<float> s = {0.5f, 2.0f, -1.0f, 0.25f, 3.0f, 1.5f};  // [3][2]
  gemv_weights w{weight_format::int8, rows, cols, q.data(), s.data()};
  w.int8_group = 32;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      EXPECT_EQ(reference::weight_at(w, r, c), q[r * cols + c] * s[r * 2 + c / 32]);
}

TEST(KernelReference, Int4LayoutIsTheEngines) {
  for (int32_t group : {32, 64, 128}) {
    const size_t rows = 3, cols = 200;  // a partial last group
    auto x = randn(rows * cols, 3);
    const size_t rb = engine::quant::int4_row_bytes(cols, group), ng = engine::quant::int4_row_groups(cols, group);
    ASSERT_EQ(int64_t(rb), int4_row_bytes(cols, group));
    std::vector<uint8_t> q(rows * rb);
    std::vector<float> s(rows * ng), deq(cols);
    for (size_t r = 0; r < rows; ++r)
      engine::quant::quantize_int4_row(x.data() + r * cols, cols, group, q.data() + r * rb, s.data() + r * ng);
    gemv_weights w{weight_format::int4, int64_t(rows), int64_t(cols), q.data(), s.data(), group};
    for (size_t r = 0; r < rows; ++r) {
      engine::quant::dequantize_int4_row(q.data() + r * rb, s.data() + r * ng, group, cols, deq.data());
      for (size_t c = 0; c < cols; ++c) ASSERT_EQ(reference::weight_at(w, r, c), deq[c]) << group << " " << r << "," << c;
      std::vector<float> y(rows);
      auto act = randn(cols, 4);
      reference::gemv(w, act.data(), 1, y.data());
      EXPECT_NEAR(y[r], engine::quant::dot_int4_f32(q.data() + r * rb, s.data() + r * ng, group, act.data(), cols),
                  1e-3);
    }
  }
}

TEST(KernelReference, Nf4DoubleQuantLayoutIsTheEngines) {
  const size_t rows = 5, cols = 75;  // odd: rows start inside blocks and inside bytes
  auto x = randn(rows * cols, 5);
  auto t = engine::quant::quantize_nf4(x.data(), rows * cols);
  auto dq = engine::quant::double_quantize(t.absmax.data(), t.absmax.size());
  std::vector<float> absmax(t.absmax.size()), deq(rows * cols);
  engine::quant::dequantize_absmax(dq, absmax.data());
  engine::quant::dequantize_nf4(t.packed.data(), absmax.data(), rows * cols, 64, deq.data());
  gemv_weights w{weight_format::nf4, int64_t(rows), int64_t(cols), t.packed.data()};
  w.absmax_codes = dq.codes.data();
  w.absmax2 = dq.absmax2.data();
  w.absmax_map = dq.code.data();
  w.absmax_offset = dq.offset;
  for (size_t i = 0; i < rows * cols; ++i) ASSERT_EQ(reference::weight_at(w, i / cols, i % cols), deq[i]) << i;
  for (int i = 0; i < 16; ++i) EXPECT_EQ(k_nf4_levels[i], engine::quant::nf4_code[i]);

  // Single level: the f32 absmax as collect_bnb_nf4 rebuilds it.
  gemv_weights plain{weight_format::nf4, int64_t(rows), int64_t(cols), t.packed.data()};
  plain.absmax = absmax.data();
  for (size_t i = 0; i < rows * cols; ++i) ASSERT_EQ(reference::weight_at(plain, i / cols, i % cols), deq[i]) << i;
}

TEST(KernelReference, NormRopeSwigluMatchTheCpuKernels) {
  const int32_t n = 96, heads = 3, hd = 32;
  auto x = randn(n, 6), wt = randn(n, 7);
  std::vector<float> a(n), b(n);
  reference::rmsnorm(x.data(), wt.data(), 1e-5f, 1, n, a.data());
  cpu::rmsnorm(x.data(), wt.data(), 1e-5f, n, b.data());
  for (int i = 0; i < n; ++i) EXPECT_NEAR(a[i], b[i], 1e-5f * (1 + std::fabs(b[i])));

  std::vector<float> inv(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv[i] = std::pow(10000.0f, -2.0f * i / hd);
  for (auto [pairs, style] : {std::pair{rope_pairs::rotate_half, engine::rope_style::rotate_half},
                              std::pair{rope_pairs::adjacent, engine::rope_style::adjacent_pairs}}) {
    auto q = randn(heads * hd, 8), q2 = q;
    const int32_t pos = 37;
    reference::rope(q.data(), &pos, inv.data(), 1, heads, hd, pairs);
    for (int h = 0; h < heads; ++h) cpu::rope(q2.data() + h * hd, hd, pos, inv.data(), style);
    for (int i = 0; i < heads * hd; ++i) EXPECT_NEAR(q[i], q2[i], 1e-5f);
  }

  auto g = randn(n, 9), g2 = g, up = randn(n, 10);
  reference::swiglu(g.data(), up.data(), n);
  cpu::swiglu(g2.data(), up.data(), n);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(g[i], g2[i], 1e-5f * (1 + std::fabs(g2[i])));
}

TEST(KernelReference, PagedAttentionDoesNotDependOnBlockPlacement) {
  const int32_t n_seq = 3, heads = 4, kv_heads = 2, hd = 16, bs = 4, max_blocks = 5;
  const std::vector<int32_t> lens = {1, 13, 20};
  const int32_t n_blocks = n_seq * max_blocks;
  auto q = randn(n_seq * heads * hd, 11);
  // Fill logical rows of each sequence, then store them in two placements.
  auto logical_k = randn(size_t(n_seq) * max_blocks * bs * kv_heads * hd, 12);
  auto logical_v = randn(logical_k.size(), 13);
  std::vector<int32_t> contiguous(n_seq * max_blocks), shuffled(n_seq * max_blocks);
  std::iota(contiguous.begin(), contiguous.end(), 0);
  shuffled = contiguous;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(14));
  auto place = [&](const std::vector<int32_t>& table, const std::vector<float>& logical) {
    std::vector<float> pool(size_t(n_blocks) * bs * kv_heads * hd);
    const size_t block_floats = size_t(bs) * kv_heads * hd;
    for (int32_t i = 0; i < n_seq * max_blocks; ++i)
      std::copy_n(logical.begin() + i * block_floats, block_floats, pool.begin() + table[i] * block_floats);
    return pool;
  };
  std::vector<float> out1(q.size()), out2(q.size());
  for (auto [table, out] : {std::pair{&contiguous, &out1}, std::pair{&shuffled, &out2}}) {
    auto kp = place(*table, logical_k), vp = place(*table, logical_v);
    paged_attention_args a{q.data(), kp.data(), vp.data(), table->data(), lens.data(), out->data(),
                           n_seq, heads, kv_heads, hd, bs, max_blocks, 0.25f};
    reference::paged_attention(a);
  }
  EXPECT_EQ(out1, out2);
  // Length 1: the output is that position's V row (softmax of one score is 1).
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < hd; ++i) EXPECT_NEAR(out1[h * hd + i], logical_v[(h / 2) * hd + i], 1e-6f);
}

TEST(KernelReference, SamplingRules) {
  const int32_t vocab = 50;
  auto logits = randn(vocab, 15, 3.0f);
  const int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<float> sorted = logits;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  int32_t tok = -1;
  const float u0 = 0.999f;
  reference::sample(logits.data(), 1, vocab, {0.0f, 0, 1.0f}, &u0, &tok);
  EXPECT_EQ(tok, best);
  reference::sample(logits.data(), 1, vocab, {1.0f, 1, 1.0f}, &u0, &tok);
  EXPECT_EQ(tok, best);
  reference::sample(logits.data(), 1, vocab, {1.0f, 0, 1e-6f}, &u0, &tok);
  EXPECT_EQ(tok, best);
  reference::sample(logits.data(), 1, vocab, {1.0f, 0, 1.0f, 1.0f}, &u0, &tok);  // min_p 1: only the max
  EXPECT_EQ(tok, best);
  for (int i = 0; i < 200; ++i) {  // min_p 0.2: never a token below 0.2 * the largest probability
    const float u = (i + 0.5f) / 200;
    reference::sample(logits.data(), 1, vocab, {1.0f, 0, 1.0f, 0.2f}, &u, &tok);
    ASSERT_GE(std::exp(logits[tok] - logits[best]), 0.2f * 0.9999f);
  }
  // top_k = 3: only the three largest appear, with frequencies proportional to exp(logit).
  std::vector<int> hits(vocab);
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    const float u = (i + 0.5f) / n;
    reference::sample(logits.data(), 1, vocab, {1.0f, 3, 1.0f}, &u, &tok);
    ASSERT_GE(logits[tok], sorted[2]);
    ++hits[tok];
  }
  const double z = std::exp(sorted[0]) + std::exp(sorted[1]) + std::exp(sorted[2]);
  for (int32_t i = 0; i < vocab; ++i)
    if (logits[i] >= sorted[2]) {
      EXPECT_NEAR(hits[i] / double(n), std::exp(logits[i]) / z, 2e-3);
    } else {
      EXPECT_EQ(hits[i], 0);
    }
}

}  // namespace
}  // namespace moat::kernels
