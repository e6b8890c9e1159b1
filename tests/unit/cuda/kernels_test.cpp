// Every CUDA kernel against its scalar reference (kernels/reference) on random inputs with odd
// sizes, outputs poisoned with NaN before each launch. Skips with a message when no device is
// present.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "engine/quant/int4.h"
#include "engine/quant/int8.h"
#include "engine/quant/nf4.h"
#include "kernels/add.cuh"
#include "kernels/gemv.cuh"
#include "kernels/kv_write.cuh"
#include "kernels/paged_attention.cuh"
#include "kernels/reference/reference.h"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope.cuh"
#include "kernels/sampling.cuh"
#include "kernels/sampling_ordered.cuh"
#include "kernels/swiglu.cuh"

namespace moat::kernels {
namespace {

#define SKIP_WITHOUT_DEVICE()                                                              \
  do {                                                                                     \
    int n_dev = 0;                                                                         \
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0)                          \
      GTEST_SKIP() << "no CUDA device: the kernels are compiled but not run on this machine"; \
  } while (0)

// A device copy of a host vector, freed on scope exit.
template <class T>
struct dev {
  T* p = nullptr;
  size_t n = 0;
  explicit dev(size_t count) : n(count) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemset(p, 0xff, std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);  // poison (NaN)
  }
  explicit dev(const std::vector<T>& h) : dev(h.size()) {
    EXPECT_EQ(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~dev() { cudaFree(p); }
  dev(const dev&) = delete;
  dev& operator=(const dev&) = delete;
  std::vector<T> get() const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
};

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Host weights of one format plus their device copies, with `host` and `device` views.
struct weights {
  gemv_weights host, device;
  std::vector<uint8_t> data;
  std::vector<float> scales, absmax2, map;
  std::vector<uint8_t> codes;
  std::unique_ptr<dev<uint8_t>> d_data, d_codes;
  std::unique_ptr<dev<float>> d_scales, d_absmax2, d_map;
};

void make_weights(weights& w, weight_format f, int64_t rows, int64_t cols, uint32_t seed) {
  auto x = randn(rows * cols, seed, 0.05f);
  w.host = gemv_weights{f, rows, cols};
  w.host.group = 64;
  if (f == weight_format::f32) {
    w.data.resize(rows * cols * 4);
    std::memcpy(w.data.data(), x.data(), w.data.size());
  } else if (f == weight_format::f16 || f == weight_format::bf16) {
    w.data.resize(rows * cols * 2);
    auto* h = reinterpret_cast<uint16_t*>(w.data.data());
    for (int64_t i = 0; i < rows * cols; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &x[i], 4);
      h[i] = uint16_t(bits >> 16);
    }
    if (f == weight_format::f16)
      for (int64_t i = 0; i < rows * cols; ++i) {
        // Small normal values: a plain conversion is enough for test inputs.
        const float v = x[i];
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        const uint32_t sign = (bits >> 16) & 0x8000u;
        const int32_t exp = int32_t((bits >> 23) & 0xff) - 127 + 15;
        h[i] = exp <= 0 ? uint16_t(sign) : uint16_t(sign | (uint32_t(exp) << 10) | ((bits >> 13) & 0x3ffu));
      }
  } else if (f == weight_format::int8) {
    auto m = engine::quant::quantize_int8_channel(x.data(), rows, cols);
    w.data.assign(reinterpret_cast<const uint8_t*>(m.q.data()), reinterpret_cast<const uint8_t*>(m.q.data()) + m.q.size());
    w.scales = m.scales;
  } else if (f == weight_format::int4) {
    const size_t rb = int4_row_bytes(cols, 64), ng = int4_row_groups(cols, 64);
    w.data.resize(rows * rb);
    w.scales.resize(rows * ng);
    for (int64_t r = 0; r < rows; ++r)
      engine::quant::quantize_int4_row(x.data() + r * cols, cols, 64, w.data.data() + r * rb, w.scales.data() + r * ng);
  } else {
    auto t = engine::quant::quantize_nf4(x.data(), rows * cols);
    auto dq = engine::quant::double_quantize(t.absmax.data(), t.absmax.size());
    w.data = t.packed;
    w.codes = dq.codes;
    w.absmax2 = dq.absmax2;
    w.map.assign(dq.code.begin(), dq.code.end());
    w.host.absmax_offset = dq.offset;
  }
  w.host.data = w.data.data();
  w.host.scales = w.scales.empty() ? nullptr : w.scales.data();
  w.host.absmax_codes = w.codes.data();
  w.host.absmax2 = w.absmax2.data();
  w.host.absmax_map = w.map.data();
  w.device = w.host;
  w.d_data = std::make_unique<dev<uint8_t>>(w.data);
  w.device.data = w.d_data->p;
  if (!w.scales.empty()) {
    w.d_scales = std::make_unique<dev<float>>(w.scales);
    w.device.scales = w.d_scales->p;
  }
  if (f == weight_format::nf4) {
    w.d_codes = std::make_unique<dev<uint8_t>>(w.codes);
    w.d_absmax2 = std::make_unique<dev<float>>(w.absmax2);
    w.d_map = std::make_unique<dev<float>>(w.map);
    w.device.absmax_codes = w.d_codes->p;
    w.device.absmax2 = w.d_absmax2->p;
    w.device.absmax_map = w.d_map->p;
  }
}

TEST(CudaKernels, GemvEveryFormatAgainstReference) {
  SKIP_WITHOUT_DEVICE();
  const weight_format formats[] = {weight_format::f32, weight_format::f16, weight_format::bf16, weight_format::int8, weight_format::int4,
                                   weight_format::nf4};
  const std::pair<int64_t, int64_t> shapes[] = {{37, 264}, {5, 75}, {130, 1024}, {1, 8}};
  for (auto f : formats)
    for (auto [rows, cols] : shapes)
      for (int32_t n_tok : {1, 3, 11}) {
        weights w;
        make_weights(w, f, rows, cols, uint32_t(rows * 7 + cols));
        auto x = randn(n_tok * cols, 99);
        std::vector<float> want(n_tok * rows);
        reference::gemv(w.host, x.data(), n_tok, want.data());
        dev<float> dx(x), dy(n_tok * rows);
        ASSERT_EQ(gemv(w.device, dx.p, n_tok, dy.p, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        auto got = dy.get();
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], want[i], 1e-4f * std::sqrt(float(cols)) + 1e-4f * std::fabs(want[i]))
              << "format " << int(f) << " " << rows << "x" << cols << " tokens " << n_tok << " at " << i;
      }
}

TEST(CudaKernels, GemvNf4WithPlainAbsmax) {
  SKIP_WITHOUT_DEVICE();
  const int64_t rows = 19, cols = 200;
  auto x = randn(rows * cols, 21, 0.05f);
  auto t = engine::quant::quantize_nf4(x.data(), rows * cols);
  gemv_weights h{weight_format::nf4, rows, cols, t.packed.data()};
  h.absmax = t.absmax.data();
  auto act = randn(2 * cols, 22);
  std::vector<float> want(2 * rows);
  reference::gemv(h, act.data(), 2, want.data());
  dev<uint8_t> dp(t.packed);
  dev<float> da(t.absmax), dx(act), dy(2 * rows);
  gemv_weights d = h;
  d.data = dp.p;
  d.absmax = da.p;
  ASSERT_EQ(gemv(d, dx.p, 2, dy.p, nullptr), cudaSuccess);
  auto got = dy.get();
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f * std::sqrt(float(cols)) + 1e-4f * std::fabs(want[i]));
}

// int8 with a scale per 32 columns (GGUF Q8_0 uploaded as stored), vectorized and scalar tails.
TEST(CudaKernels, GemvInt8WithScalePer32) {
  SKIP_WITHOUT_DEVICE();
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{9, 96}, {130, 2048}}) {
    std::mt19937 rng(uint32_t(rows + cols));
    std::vector<int8_t> q(rows * cols);
    for (auto& v : q) v = int8_t(int(rng() % 255) - 127);
    auto s = randn(rows * cols / 32, 5, 0.01f);
    gemv_weights h{weight_format::int8, rows, cols, q.data(), s.data()};
    h.int8_group = 32;
    auto act = randn(3 * cols, 6);
    std::vector<float> want(3 * rows);
    reference::gemv(h, act.data(), 3, want.data());
    dev<int8_t> dq(q);
    dev<float> ds(s), dx(act), dy(3 * rows);
    gemv_weights d = h;
    d.data = dq.p;
    d.scales = ds.p;
    ASSERT_EQ(gemv(d, dx.p, 3, dy.p, nullptr), cudaSuccess);
    auto got = dy.get();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-4f * std::sqrt(float(cols)) + 1e-4f * std::fabs(want[i]))
          << rows << "x" << cols;
  }
}

TEST(CudaKernels, GemvRejectsBadArguments) {
  SKIP_WITHOUT_DEVICE();
  gemv_weights w{weight_format::int4, 4, 64};
  EXPECT_EQ(gemv(w, nullptr, 1, nullptr, nullptr), cudaErrorInvalidValue);  // no data
  const float scale = 1.0f;
  gemv_weights i8{weight_format::int8, 4, 48, &scale, &scale};
  i8.int8_group = 32;  // 48 columns are not whole groups of 32
  EXPECT_EQ(gemv(i8, nullptr, 1, nullptr, nullptr), cudaErrorInvalidValue);
}

TEST(CudaKernels, RmsnormRopeSwiglu) {
  SKIP_WITHOUT_DEVICE();
  const int32_t n_tok = 3, n = 333, heads = 5, hd = 64;
  auto x = randn(n_tok * n, 1), wt = randn(n, 2);
  std::vector<float> want(x.size());
  reference::rmsnorm(x.data(), wt.data(), 1e-6f, n_tok, n, want.data());
  dev<float> dx(x), dw(wt), dout(x.size());
  ASSERT_EQ(rmsnorm(dx.p, dw.p, 1e-6f, n_tok, n, dout.p, nullptr), cudaSuccess);
  auto got = dout.get();
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i])));

  std::vector<float> inv(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv[i] = std::pow(500000.0f, -2.0f * i / hd);
  const std::vector<int32_t> pos = {0, 17, 100000};
  for (auto pairs : {rope_pairs::rotate_half, rope_pairs::adjacent}) {
    auto q = randn(n_tok * heads * hd, 3), qw = q;
    reference::rope(qw.data(), pos.data(), inv.data(), n_tok, heads, hd, pairs);
    dev<float> dq(q), dinv(inv);
    dev<int32_t> dpos(pos);
    ASSERT_EQ(rope(dq.p, dpos.p, dinv.p, n_tok, heads, hd, pairs, nullptr), cudaSuccess);
    auto g = dq.get();
    for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], qw[i], 2e-4f) << i;
  }

  auto base = randn(777, 6), inc = randn(777, 7), sum = base;
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += inc[i];
  dev<float> db(base), di(inc);
  ASSERT_EQ(add(db.p, di.p, 777, nullptr), cudaSuccess);
  EXPECT_EQ(db.get(), sum);

  auto gate = randn(1001, 4), up = randn(1001, 5), gw = gate;
  reference::swiglu(gw.data(), up.data(), 1001);
  dev<float> dg(gate), du(up);
  ASSERT_EQ(swiglu(dg.p, du.p, 1001, nullptr), cudaSuccess);
  auto gg = dg.get();
  for (size_t i = 0; i < gg.size(); ++i) ASSERT_NEAR(gg[i], gw[i], 1e-5f * (1 + std::fabs(gw[i])));
}

TEST(CudaKernels, PagedAttentionAgainstReference) {
  SKIP_WITHOUT_DEVICE();
  for (int32_t hd : {16, 64, 128, 80}) {
    const int32_t n_seq = 4, heads = 8, kv_heads = 2, bs = 16, max_blocks = 40;
    const std::vector<int32_t> lens = {1, 0, 77, 600};
    const int32_t n_blocks = n_seq * max_blocks;
    std::vector<int32_t> table(n_seq * max_blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(hd));
    auto q = randn(n_seq * heads * hd, 1), k = randn(size_t(n_blocks) * bs * kv_heads * hd, 2),
         v = randn(k.size(), 3);
    std::vector<float> want(q.size());
    paged_attention_args a{q.data(), k.data(), v.data(), table.data(), lens.data(), want.data(),
                           n_seq, heads, kv_heads, hd, bs, max_blocks, 1.0f / std::sqrt(float(hd))};
    reference::paged_attention(a);
    dev<float> dq(q), dk(k), dv(v), dout(q.size());
    dev<int32_t> dt(table), dl(lens);
    paged_attention_args d = a;
    d.q = dq.p;
    d.k_pool = dk.p;
    d.v_pool = dv.p;
    d.block_tables = dt.p;
    d.seq_lens = dl.p;
    d.out = dout.p;
    ASSERT_EQ(paged_attention(d, nullptr), cudaSuccess);
    auto got = dout.get();
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << "hd " << hd << " at " << i;
  }
}

TEST(CudaKernels, KvWriteScattersRows) {
  SKIP_WITHOUT_DEVICE();
  const int32_t n = 7, kv_dim = 300, pool_rows = 64;
  const std::vector<int32_t> rows = {5, 63, 0, 17, 18, 40, 2};
  auto k = randn(n * kv_dim, 1), v = randn(n * kv_dim, 2);
  auto kp = randn(pool_rows * kv_dim, 3), vp = randn(pool_rows * kv_dim, 4);
  dev<float> dk(k), dv(v), dkp(kp), dvp(vp);
  dev<int32_t> dr(rows);
  reference::kv_write(k.data(), v.data(), rows.data(), n, kv_dim, kp.data(), vp.data());
  ASSERT_EQ(kv_write(dk.p, dv.p, dr.p, n, kv_dim, dkp.p, dvp.p, nullptr), cudaSuccess);
  EXPECT_EQ(dkp.get(), kp);  // untouched rows keep their values too
  EXPECT_EQ(dvp.get(), vp);
}

TEST(CudaKernels, SamplingAgainstReference) {
  SKIP_WITHOUT_DEVICE();
  const int32_t rows = 64, vocab = 32003;
  auto logits = randn(size_t(rows) * vocab, 7, 2.0f);
  std::vector<float> u(rows);
  std::mt19937 rng(8);
  for (auto& x : u) x = std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
  dev<float> dl(logits), du(u), ws(size_t(rows) * vocab);
  const sampling_params cases[] = {{0.0f, 0, 1.0f}, {1.0f, 0, 1.0f}, {0.7f, 40, 1.0f}, {1.0f, 0, 0.9f}, {0.8f, 50, 0.95f},
                                   {1.0f, 0, 1.0f, 0.05f}, {0.9f, 100, 0.8f, 0.01f}};
  for (const auto& p : cases) {
    std::vector<int32_t> want(rows);
    reference::sample(logits.data(), rows, vocab, p, u.data(), want.data());
    dev<int32_t> dout(rows);
    ASSERT_EQ(sample(dl.p, rows, vocab, p, du.p, ws.p, dout.p, nullptr), cudaSuccess);
    auto got = dout.get();
    int agree = 0;
    for (int32_t r = 0; r < rows; ++r) agree += got[r] == want[r];
    // Float sums in another order can move a pick at an exact boundary; allow one in 64.
    EXPECT_GE(agree, rows - 1) << "temperature " << p.temperature << " top_k " << p.top_k << " top_p " << p.top_p;
  }
}

TEST(CudaKernels, OrderedSamplingAgainstReference) {
  SKIP_WITHOUT_DEVICE();
  // Per-row knobs (a batch of different requests), some rows with many tied logits.
  const int32_t rows = 48, vocab = 5003;
  auto logits = randn(size_t(rows) * vocab, 17, 2.0f);
  for (int32_t r = 0; r < rows; r += 3)
    for (int32_t i = 0; i < vocab; ++i) logits[size_t(r) * vocab + i] = std::round(logits[size_t(r) * vocab + i] * 2) / 2;
  const sampling_params knobs[] = {{0.0f, 0, 1.0f},        {1.0f, 0, 1.0f},        {0.7f, 40, 1.0f},
                                   {1.0f, 0, 0.9f},        {0.8f, 50, 0.95f},      {1.0f, 0, 1.0f, 0.05f},
                                   {0.9f, 100, 0.8f, 0.01f}, {1.2f, 1, 1.0f},       {1.0f, 3, 0.5f, 0.2f}};
  std::vector<sampling_params> params(rows);
  std::vector<double> u(rows);
  std::mt19937_64 rng(9);
  for (int32_t r = 0; r < rows; ++r) {
    params[r] = knobs[r % std::size(knobs)];
    u[r] = double(rng() >> 11) * 0x1.0p-53;
  }
  // Adds: a bias and, for the same token, a penalty after it (order matters in float).
  std::vector<int32_t> begin(rows + 1), tokens;
  std::vector<float> values;
  for (int32_t r = 0; r < rows; ++r) {
    begin[r] = int32_t(tokens.size());
    tokens.insert(tokens.end(), {r % vocab, 7, 7, vocab + 5});
    values.insert(values.end(), {3.0f, 1.25f, -0.7f, 9.0f});
  }
  begin[rows] = int32_t(tokens.size());
  dev<float> dl(logits), ws(size_t(rows) * vocab);
  dev<sampling_params> dp(params);
  dev<double> du(u);
  dev<int32_t> db(begin), dt(tokens), dout(rows);
  dev<float> dv(values);
  ASSERT_EQ(apply_logit_adds(dl.p, rows, vocab, db.p, dt.p, dv.p, nullptr), cudaSuccess);
  ASSERT_EQ(sample_ordered(dl.p, rows, vocab, dp.p, du.p, ws.p, dout.p, nullptr), cudaSuccess);
  std::vector<float> adjusted = logits;
  for (int32_t r = 0; r < rows; ++r)
    for (int32_t k = begin[r]; k < begin[r + 1]; ++k)
      if (tokens[k] < vocab) adjusted[size_t(r) * vocab + tokens[k]] += values[k];
  EXPECT_EQ(dl.get(), adjusted);  // the adds, in order, bit for bit
  const auto got = dout.get();
  int agree = 0;
  for (int32_t r = 0; r < rows; ++r) {
    int32_t want = -1;
    reference::sample_ordered(adjusted.data() + size_t(r) * vocab, 1, vocab, params[r], &u[r], &want);
    if (params[r].temperature < k_greedy_temperature) {
      EXPECT_EQ(got[r], want) << "greedy row " << r;
    }
    agree += got[r] == want;
  }
  // expf and the summation order differ from the host's: a pick at an exact boundary may move.
  EXPECT_GE(agree, rows - 1);
}

}  // namespace
}  // namespace moat::kernels
