// options.quant in the CPU forward pass, on both fixture models and every format:
//  - logits close to the f32 model's, teacher-forced on the f32 greedy continuation;
//  - greedy agreement with f32 over 64 tokens (printed; a floor asserted);
//  - the batched path (SIMD kernels, activations quantized to Q8_0) close to the reference
//    path (weights dequantized per row, f32 dot products) for the same format.
#include <gtest/gtest.h>

#include <cstdio>

#include "cpu/model_view.h"
#include "quant_support.h"

namespace moat::test {
namespace {

constexpr int n_greedy = 64;

struct format_case {
  std::string quant;
  // Worst-position relative logit error vs f32 (max|dq - f32| / max|f32|). int8 per channel
  // keeps ~8 bits per weight: a few percent at most. 4-bit formats keep 16 levels per group
  // of 64: each weight moves by up to half a step (~7% of the group's absmax for int4), and on
  // these tiny models (hidden 64/128) the errors of 5-8 layers do not average out.
  double logit_tol;
  // Greedy agreement floors, from the measured figures (docs/quantization.md, "Quality"). On
  // these tiny models the top two logits are often close, so one flip sends a free-running
  // decode down another (still fluent) story: tinystories656K int8 leaves the f32 path after 7
  // tokens although it picks the f32 token at 62 of 64 teacher-forced positions. So the free
  // run asserts a short common prefix, and the teacher-forced top-1 agreement carries the floor.
  int min_prefix;
  int min_forced;  // of 64 teacher-forced positions
  // Batched (Q8_0 activations, SIMD) vs reference (f32 activations) for the same weights: only
  // the activation quantization differs, ~1/127 of each 32-block's absmax.
  double path_tol;
};

const format_case format_cases[] = {
    {"int8", 0.05, 5, 60, 0.05},
    {"int4", 0.35, 4, 48, 0.05},
    {"nf4", 0.35, 4, 48, 0.05},
};

struct param {
  model_case model;
  format_case format;
};
void PrintTo(const param& p, std::ostream* os) { *os << p.model.name << " " << p.format.quant; }

class quant_forward : public ::testing::TestWithParam<param> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fixture(GetParam().model.weights))) {
      GTEST_SKIP() << "fixture " << GetParam().model.weights << " is absent";
    }
    model_ = load_shared(fixture(GetParam().model.path));
  }
  std::shared_ptr<const engine::loaded_model> model_;
};

TEST_P(quant_forward, logits_close_to_f32_and_greedy_agreement) {
  const auto& fc = GetParam().format;
  auto f32 = runner(model_, "", false);
  auto q = runner(model_, fc.quant, false);
  const int64_t vocab = f32->config().vocab_size;
  const std::vector<int32_t> prompt = {1};
  const auto want = greedy(*f32, prompt, n_greedy);
  const auto got = greedy(*q, prompt, n_greedy);

  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), want.begin(), want.end());
  seq.pop_back();  // the logits of the last generated token are not needed
  const auto lf = all_logits(*f32, seq);
  const auto lq = all_logits(*q, seq);
  const double err = max_rel_error(lq, lf, vocab);
  int same_pos = 0;
  for (size_t i = 0; i < want.size(); ++i) same_pos += want[i] == got[i];
  // Teacher-forced: does the quantized model pick the f32 token at each position?
  int forced = 0;
  for (size_t p = 0; p < seq.size(); ++p) forced += argmax(lq.data() + p * vocab, vocab) == want[p];
  std::printf("[quant] %s %s: max rel logit error %.4f, greedy common prefix %d/%d, same position %d/%d, "
              "teacher-forced top-1 %d/%zu\n",
              GetParam().model.name.c_str(), fc.quant.c_str(), err, common_prefix(want, got), n_greedy, same_pos,
              n_greedy, forced, seq.size());
  EXPECT_GT(err, 0.0) << "quantized logits identical to f32: the format was not applied";
  EXPECT_LT(err, fc.logit_tol);
  EXPECT_GE(common_prefix(want, got), fc.min_prefix);
  EXPECT_GE(forced, fc.min_forced);
}

TEST_P(quant_forward, batched_path_close_to_reference_path) {
  const auto& fc = GetParam().format;
  auto ref = runner(model_, fc.quant, true);
  auto bat = runner(model_, fc.quant, false, 3);
  const int64_t vocab = ref->config().vocab_size;
  const std::vector<int32_t> prompt = {1};
  const auto ids = greedy(*ref, prompt, 32);
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), ids.begin(), ids.end());
  const double err = max_rel_error(all_logits(*bat, seq), all_logits(*ref, seq), vocab);
  const auto bat_ids = greedy(*bat, prompt, 32);
  std::printf("[quant] %s %s: batched vs reference max rel logit error %.5f, greedy common prefix %d/32\n",
              GetParam().model.name.c_str(), fc.quant.c_str(), err, common_prefix(ids, bat_ids));
  EXPECT_LT(err, fc.path_tol);
  EXPECT_GE(common_prefix(ids, bat_ids), 8);
}

std::vector<param> all_params() {
  std::vector<param> out;
  for (const auto& m : model_cases()) {
    for (const auto& f : format_cases) out.push_back({m, f});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(formats, quant_forward, ::testing::ValuesIn(all_params()),
                         [](const auto& info) { return info.param.model.name + "_" + info.param.format.quant; });

// The linear weights carry the quantized dtype and scales, the embedding keeps its dtype, and
// row_to_f32 of a quantized row (the reference path's dequantization) is the f32 row to within
// the format's step.
TEST(quant_model_view, linear_weights_quantized_embeddings_kept) {
  const auto& mc = model_cases()[1];
  if (!std::filesystem::exists(fixture(mc.weights))) GTEST_SKIP() << "fixture " << mc.weights << " is absent";
  auto model = load_shared(fixture(mc.path));
  for (auto [name, dt] : {std::pair{"int8", engine::dtype::int8}, {"int4", engine::dtype::int4}, {"nf4", engine::dtype::nf4}}) {
    cpu::model_view mv(*model, dt);
    EXPECT_EQ(mv.w.layers[0].wq.type, dt) << name;
    EXPECT_EQ(mv.w.layers.back().w_down.type, dt) << name;
    EXPECT_EQ(mv.w.embed.type, model->weights.embed.type) << name;
    // Row 3 dequantized by the tensor equals the f32 row to the format's step.
    const auto& t = mv.w.layers[0].w_up;
    const auto& src = model->weights.layers[0].w_up;
    std::vector<float> a(t.cols()), b(t.cols());
    t.row_to_f32(3, a.data());
    src.row_to_f32(3, b.data());
    float amax = 0, diff = 0;
    for (int64_t i = 0; i < t.cols(); ++i) {
      amax = std::max(amax, std::abs(b[i]));
      diff = std::max(diff, std::abs(a[i] - b[i]));
    }
    EXPECT_GT(diff, 0.0f) << name;
    EXPECT_LT(diff, amax * (dt == engine::dtype::int8 ? 0.005f : 0.2f)) << name;
  }
  EXPECT_FALSE(cpu::parse_quant("int5").has_value());
  EXPECT_THROW(runner(model, "int5", false), std::exception);
}

}  // namespace
}  // namespace moat::test
