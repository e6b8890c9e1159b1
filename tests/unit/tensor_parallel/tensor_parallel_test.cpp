// Tensor-parallel sharding (engine/tensor_parallel.h): plans, row/column slices in every dtype
// the loader produces, the thread all-reduce, and TP=2 / TP=4 forward passes against TP=1 on the
// tinystories fixture (8 heads, 4 kv heads), in f32 and with Q8_0 projections.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>

#include "cpu/model_view.h"
#include "cpu/reference_forward.h"
#include "engine/quant/int8.h"
#include "engine/tensor_parallel.h"
#include "tp_cpu_forward.h"

namespace moat::engine {
namespace {

model_config tiny_config() {
  model_config c;
  c.vocab_size = 2049;
  c.hidden_size = 128;
  c.intermediate_size = 384;
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 16;
  return c;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(TpPlan, RejectsWorldsThatDoNotDivideHeads) {
  const auto c = tiny_config();
  EXPECT_THROW(tp_plan::make(c, 0), model_error);
  EXPECT_THROW(tp_plan::make(c, 3), model_error);  // 8 heads
  EXPECT_THROW(tp_plan::make(c, 8), model_error);  // 4 kv heads
  auto odd = c;
  odd.intermediate_size = 390;
  EXPECT_THROW(tp_plan::make(odd, 4), model_error);
  EXPECT_NO_THROW(tp_plan::make(c, 4));
}

TEST(TpPlan, RangesTileEveryDimension) {
  const auto p = tp_plan::make(tiny_config(), 4);
  EXPECT_EQ(p.heads_per_rank, 2);
  EXPECT_EQ(p.kv_heads_per_rank, 1);
  int64_t q = 0, kv = 0, ffn = 0, vocab = 0;
  for (int32_t r = 0; r < 4; ++r) {
    EXPECT_EQ(p.q_rows(r).begin, q);
    EXPECT_EQ(p.kv_rows(r).begin, kv);
    EXPECT_EQ(p.ffn_rows(r).begin, ffn);
    EXPECT_EQ(p.vocab_rows(r).begin, vocab);
    q = p.q_rows(r).end;
    kv = p.kv_rows(r).end;
    ffn = p.ffn_rows(r).end;
    vocab = p.vocab_rows(r).end;
  }
  EXPECT_EQ(q, 128);
  EXPECT_EQ(kv, 64);
  EXPECT_EQ(ffn, 384);
  EXPECT_EQ(vocab, 2049);  // the vocabulary need not divide: the last rank is shorter
  EXPECT_EQ(p.vocab_rows(3).size(), 2049 - 3 * 513);
}

TEST(TpSlice, RowsAndColumnsOfF32) {
  const int64_t rows = 6, cols = 40;
  auto data = random_floats(rows * cols, 1);
  tensor t{"w", dtype::f32, {rows, cols}, data.data()};
  const tensor r = tp_slice_rows(t, {2, 5});
  ASSERT_EQ(r.rows(), 3);
  std::vector<float> row(cols);
  r.row_to_f32(1, row.data());
  for (int64_t i = 0; i < cols; ++i) EXPECT_EQ(row[i], data[3 * cols + i]);

  std::vector<std::unique_ptr<uint8_t[]>> owned;
  const tensor c = tp_slice_cols(t, {10, 30}, owned);
  ASSERT_EQ(c.rows(), rows);
  ASSERT_EQ(c.cols(), 20);
  std::vector<float> crow(20);
  for (int64_t o = 0; o < rows; ++o) {
    c.row_to_f32(o, crow.data());
    for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(crow[i], data[o * cols + 10 + i]) << o << "," << i;
  }
  EXPECT_THROW(tp_slice_cols(t, {10, 50}, owned), model_error);
  EXPECT_THROW(tp_slice_rows(t, {4, 7}), model_error);
}

TEST(TpSlice, ColumnsOfQ8_0KeepBlocksWhole) {
  const int64_t rows = 5, cols = 128;
  auto x = random_floats(rows * cols, 2);
  const size_t row_bytes = dtype_row_bytes(dtype::q8_0, cols);
  std::vector<uint8_t> q(row_bytes * rows);
  for (int64_t o = 0; o < rows; ++o)
    quant::quantize_q8_0(x.data() + o * cols, cols, reinterpret_cast<quant::block_q8_0*>(q.data() + o * row_bytes));
  tensor t{"wq8", dtype::q8_0, {rows, cols}, q.data()};
  std::vector<std::unique_ptr<uint8_t[]>> owned;
  const tensor c = tp_slice_cols(t, {32, 96}, owned);
  std::vector<float> full(cols), part(64);
  for (int64_t o = 0; o < rows; ++o) {
    t.row_to_f32(o, full.data());
    c.row_to_f32(o, part.data());
    for (int i = 0; i < 64; ++i) EXPECT_EQ(part[i], full[32 + i]);
  }
  EXPECT_THROW(tp_slice_cols(t, {16, 64}, owned), model_error);  // splits a block
}

TEST(ThreadAllReduce, EveryRankGetsTheRankOrderSum) {
  for (int32_t world : {1, 2, 4}) {
    thread_all_reduce ar(world);
    std::vector<std::vector<float>> bufs;
    const std::vector<int64_t> sizes = {1000, 7, 1, 333};  // several calls, sizes changing
    std::vector<std::vector<std::vector<float>>> got(world);
    std::vector<std::thread> threads;
    for (int32_t r = 0; r < world; ++r) {
      threads.emplace_back([&, r] {
        for (size_t call = 0; call < sizes.size(); ++call) {
          auto v = random_floats(sizes[call], 100 * call + r);
          ar.sum(r, v.data(), sizes[call]);
          got[r].push_back(v);
        }
      });
    }
    for (auto& t : threads) t.join();
    for (size_t call = 0; call < sizes.size(); ++call) {
      std::vector<float> expect(sizes[call], 0.0f);
      for (int32_t r = 0; r < world; ++r) {
        auto v = random_floats(sizes[call], 100 * call + r);
        for (int64_t i = 0; i < sizes[call]; ++i) expect[i] += v[i];
      }
      for (int32_t r = 0; r < world; ++r) ASSERT_EQ(got[r][call], expect) << "world " << world << " rank " << r;
    }
  }
}

// ---- the fixture model ----

const std::filesystem::path k_fixture = std::filesystem::path(MOAT_FIXTURES_DIR) / "tinystories-656K-hf";

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Greedy decode of `steps` tokens after `prompt`, recording every step's logits.
template <class StepFn>
std::vector<std::vector<float>> greedy_logits(StepFn step, const std::vector<int32_t>& prompt, int steps,
                                              std::vector<int32_t>& tokens) {
  std::vector<std::vector<float>> all;
  tokens = prompt;
  for (int32_t pos = 0; pos + 1 < static_cast<int32_t>(prompt.size()) + steps; ++pos) {
    auto logits = step(tokens[pos], pos);
    if (pos + 1 >= static_cast<int32_t>(prompt.size())) tokens.push_back(argmax(logits));
    all.push_back(std::move(logits));
  }
  return all;
}

void expect_tp_matches(const loaded_model& m, const std::vector<std::vector<float>>& want,
                       const std::vector<int32_t>& want_tokens, const std::vector<int32_t>& prompt, int steps,
                       int32_t world) {
  test::tp_cpu_model tp(m, world, 256);
  std::vector<int32_t> tokens;
  auto got = greedy_logits([&](int32_t t, int32_t p) { return tp.step(t, p); }, prompt, steps, tokens);
  EXPECT_EQ(tokens, want_tokens) << "TP=" << world;
  ASSERT_EQ(got.size(), want.size());
  float worst = 0.0f;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, max_abs_diff(got[i], want[i]));
  // fp32 sums reordered across ranks: differences at the level of float rounding of logits
  // whose magnitude is ~10.
  EXPECT_LT(worst, 2e-4f) << "TP=" << world;
  std::printf("TP=%d: %zu steps, max |logit - TP1 logit| = %.3g\n", world, got.size(), worst);
}

const std::vector<int32_t> k_prompt = {1, 415, 1012, 29, 280, 1300};
constexpr int k_steps = 40;

TEST(TpFixture, Tp2AndTp4MatchTheReferenceForward) {
  if (!std::filesystem::exists(k_fixture)) GTEST_SKIP() << "fixture " << k_fixture << " is absent";
  const loaded_model m = load_model(k_fixture);
  cpu::model_view mv(m);
  cpu::kv_pool kv(m.config.n_layers, 256, m.config.kv_dim(), 1);
  std::vector<int32_t> want_tokens;
  auto want = greedy_logits(
      [&](int32_t t, int32_t p) {
        std::vector<float> l(m.config.vocab_size);
        cpu::reference_forward(mv, kv, 0, t, p, l.data(), nullptr);
        return l;
      },
      k_prompt, k_steps, want_tokens);
  for (int32_t world : {1, 2, 4}) expect_tp_matches(m, want, want_tokens, k_prompt, k_steps, world);
  EXPECT_THROW(test::tp_cpu_model(m, 8, 16), model_error);  // 4 kv heads
}

// The projections converted to Q8_0: the row-parallel splits must land on block boundaries
// (wo: 128/4 = 32 columns, w_down: 384/4 = 96) and give the same logits as Q8_0 at TP=1.
struct q8_model {
  loaded_model m;
  std::vector<std::vector<uint8_t>> buffers;
};

tensor to_q8_0(const tensor& t, std::vector<std::vector<uint8_t>>& buffers) {
  const size_t row_bytes = dtype_row_bytes(dtype::q8_0, t.cols());
  buffers.emplace_back(row_bytes * t.rows());
  std::vector<float> row(t.cols());
  for (int64_t o = 0; o < t.rows(); ++o) {
    t.row_to_f32(o, row.data());
    quant::quantize_q8_0(row.data(), t.cols(),
                         reinterpret_cast<quant::block_q8_0*>(buffers.back().data() + o * row_bytes));
  }
  tensor out = t;
  out.type = dtype::q8_0;
  out.data = buffers.back().data();
  return out;
}

TEST(TpFixture, Q8_0ProjectionsShardOnBlockBoundaries) {
  if (!std::filesystem::exists(k_fixture)) GTEST_SKIP() << "fixture " << k_fixture << " is absent";
  q8_model q{load_model(k_fixture), {}};
  q.buffers.reserve(64);  // tensors point into the buffers: no reallocation of the outer vector
  for (auto& l : q.m.weights.layers)
    for (tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) *t = to_q8_0(*t, q.buffers);
  test::tp_cpu_model tp1(q.m, 1, 256);
  std::vector<int32_t> want_tokens;
  auto want = greedy_logits([&](int32_t t, int32_t p) { return tp1.step(t, p); }, k_prompt, k_steps, want_tokens);
  for (int32_t world : {2, 4}) expect_tp_matches(q.m, want, want_tokens, k_prompt, k_steps, world);
}

}  // namespace
}  // namespace moat::engine
