// bitsandbytes checkpoints loaded as they are. Two sources:
//  - tests/golden/bnb/{nf4,int8}: a tiny random Llama saved by transformers itself with
//    load_in_4bit (NF4, double quantization) and load_in_8bit (LLM.int8), with the logits
//    transformers computes (tools/make_bnb_checkpoint_goldens.py);
//  - the tinystories-656K fixture through `moat quantize --format nf4`, whose output is the
//    same layout (tools/check_bnb_checkpoint.py finds every weight identical to bitsandbytes').
//
// Tolerances. The reference for "loads as they are" is the unquantized model's code run on the
// checkpoint's weights as bitsandbytes itself dequantizes them (golden *_weights): moat's
// dequantization is bit-exact with bitsandbytes' (tests/unit/quant goldens), so only f32
// summation order separates the two, 1e-4 of the largest logit (the batched NF4 kernel reads
// float activations too; with AVX512_BF16, from 8 tokens on it rounds both to bf16, see the
// test). The batched int8 kernel also quantizes activations to Q8_0 (<= 1/254
// of a block's absmax each), which over the (7 L + 1) matmuls of a token's path gives a
// first-order bound of (7 L + 1) / 254. Against the unquantized model the format's own error
// counts: int8 per channel is off by at most 0.5/127 of a row's absmax per weight, the same
// first-order bound (doubled on the batched path). NF4's per-weight bound (0.152 of a block's
// absmax) makes that formula meaningless, so the 4-bit check against f32 is the measured one
// (max relative error 0.32 on this random model, top-1 agreement). transformers' own quantized
// forward (golden nf4 / int8) is not "dequantize, then f32" on CPU (int8 casts activations to
// fp16), so it is held only to the same bounds.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "checkpoint_support.h"
#include "cpu/quant/kernels.h"
#include "engine/quant/nf4.h"
#include "engine/quant/quantize_folder.h"
#include "engine/quant/safetensors_writer.h"
#include "engine/safetensors.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

struct golden_logits {
  std::vector<int32_t> prompt;
  int64_t vocab = 0;
  std::vector<float> f32, nf4, int8, nf4_weights, int8_weights;
};

golden_logits read_golden() {
  simdjson::dom::parser parser;
  auto doc = parser.load(source_path("tests/golden/bnb/logits.json").string());
  golden_logits g;
  for (auto v : doc["prompt"].get_array()) g.prompt.push_back(static_cast<int32_t>(int64_t(v)));
  g.vocab = int64_t(doc["vocab"]);
  for (auto [key, out] : {std::pair{"f32", &g.f32}, {"nf4", &g.nf4}, {"int8", &g.int8}, {"nf4_weights", &g.nf4_weights},
                          {"int8_weights", &g.int8_weights}}) {
    for (auto v : doc[key].get_array()) out->push_back(static_cast<float>(double(v)));
  }
  return g;
}

// The file's own tensors (name -> bytes), to check the loader points at them unchanged.
struct file_tensors {
  std::vector<uint8_t> bytes;
  std::map<std::string, engine::tensor, std::less<>> tensors;
  explicit file_tensors(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
    engine::parse_safetensors(bytes, p.string(), tensors);
  }
  bool same_bytes(const std::string& name, const void* data, size_t n) const {
    return std::memcmp(tensors.at(name).data, data, n) == 0;
  }
};

std::vector<const engine::tensor*> linear_weights(const engine::model_weights& w) {
  std::vector<const engine::tensor*> out;
  for (const auto& l : w.layers) {
    for (const auto* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) out.push_back(t);
  }
  return out;
}

TEST(bnb_checkpoint, transformers_nf4_loads_as_stored_and_matches_transformers) {
  const fs::path dir = source_path("tests/golden/bnb/nf4");
  const golden_logits g = read_golden();
  auto model = load_shared(dir);
  const file_tensors file(dir / "model.safetensors");
  for (const auto* t : linear_weights(model->weights)) {
    SCOPED_TRACE(t->name);
    EXPECT_EQ(t->type, engine::dtype::nf4);
    EXPECT_EQ(t->shape.size(), 2u);
    EXPECT_TRUE(file.same_bytes(t->name, t->data, static_cast<size_t>(t->numel() / 2)));  // packed codes as stored
    ASSERT_NE(t->scales, nullptr);
  }
  EXPECT_EQ(model->weights.embed.type, engine::dtype::f32);  // transformers keeps them unquantized
  EXPECT_EQ(model->weights.lm_head.type, engine::dtype::f32);
  const double n_matmuls = 7.0 * model->config.n_layers + 1;
  for (bool reference : {true, false}) {
    const auto ours = all_logits(*runner(model, reference), g.prompt);
    const double vs_weights = max_rel_error(ours, g.nf4_weights, g.vocab), vs_bnb = max_rel_error(ours, g.nf4, g.vocab),
                 vs_f32 = max_rel_error(ours, g.f32, g.vocab);
    std::printf("[ bnb nf4 %s ] vs bitsandbytes-dequantized f32 %.2e, vs transformers nf4 %.4f, vs f32 %.4f, top-1 vs f32 %d/%zu\n",
                reference ? "reference" : "batched", vs_weights, vs_bnb, vs_f32, same_argmax(ours, g.f32, g.vocab),
                g.prompt.size());
    // From 8 tokens on, where the CPU has AVX512_BF16, the batched NF4 product rounds weights
    // and activations to bf16 (what bitsandbytes does on GPUs: 16-bit matmul of the dequantized
    // weights): each matmul is then within ~2 * 2^-8 of sum |w||x|, first order over the path
    // (7 L + 1) times that, the bf16 counterpart of the int8 activations' bound below. The AMX
    // tiles, where the CPU has them, multiply the same bf16 values.
    const auto& k = cpu::quant::kernels();
    const bool bf16 = !reference && (k.gemm_nf4_bf16 != nullptr || k.gemm_nf4_amx != nullptr) &&
                      g.prompt.size() >= cpu::quant::nf4_bf16_min_batch;
    EXPECT_LT(vs_weights, bf16 ? n_matmuls * 2 * std::ldexp(1.0, -8) : 1e-4);
    EXPECT_LT(vs_bnb, n_matmuls / 254);
    EXPECT_LT(vs_f32, 0.5);
    EXPECT_GE(same_argmax(ours, g.f32, g.vocab), 5);
  }
}

TEST(bnb_checkpoint, transformers_int8_loads_as_stored) {
  const fs::path dir = source_path("tests/golden/bnb/int8");
  const golden_logits g = read_golden();
  auto model = load_shared(dir);
  const file_tensors file(dir / "model.safetensors");
  for (const auto* t : linear_weights(model->weights)) {
    SCOPED_TRACE(t->name);
    EXPECT_EQ(t->type, engine::dtype::int8);
    EXPECT_TRUE(file.same_bytes(t->name, t->data, static_cast<size_t>(t->numel())));
    // scale = SCB / 127: row r dequantizes to q * SCB[r] / 127.
    const std::string scb = t->name.substr(0, t->name.size() - 7) + ".SCB";
    const auto* absmax = static_cast<const float*>(file.tensors.at(scb).data);
    for (int64_t r = 0; r < t->rows(); ++r) ASSERT_FLOAT_EQ(t->scales[r], absmax[r] / 127.0f) << r;
  }
  const double n_matmuls = 7.0 * model->config.n_layers + 1;
  for (bool reference : {true, false}) {
    const auto ours = all_logits(*runner(model, reference), g.prompt);
    const double vs_weights = max_rel_error(ours, g.int8_weights, g.vocab), vs_f32 = max_rel_error(ours, g.f32, g.vocab),
                 vs_bnb = max_rel_error(ours, g.int8, g.vocab);
    const double activations = reference ? 1e-4 : n_matmuls / 254;
    const double bound = n_matmuls * 0.5 / 127 * (reference ? 1 : 2);
    std::printf("[ bnb int8 %s ] vs bitsandbytes-dequantized f32 %.2e (bound %.4f), vs f32 %.4f (bound %.4f), "
                "vs transformers int8 %.4f\n", reference ? "reference" : "batched", vs_weights, activations, vs_f32, bound,
                vs_bnb);
    EXPECT_LT(vs_weights, activations);
    EXPECT_LT(vs_f32, bound);
    EXPECT_GT(vs_f32, 0.0);
    // transformers runs LLM.int8 with fp16 activations quantized per row: its own error against
    // f32 is of the same order, so the two meet within twice the bound.
    EXPECT_LT(vs_bnb, 2 * bound);
  }
}

// moat quantize --format nf4 writes the transformers layout; loading it back must give the
// codes quant: nf4 computes on load (same math), with the absmax only double-quantized.
class quantized_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = fixture("tinystories-656K-hf");
    if (!fs::exists(src_ / "model.safetensors")) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
    engine::quant::quantize_model_folder(src_, dir_.path / "nf4", {});
  }
  fs::path src_;
  scratch_dir dir_{"bnb_fixture"};
};

TEST_F(quantized_fixture, loads_as_stored_with_the_codes_of_quant_nf4) {
  auto f32 = load_shared(src_);
  auto bnb = load_shared(dir_.path / "nf4");
  EXPECT_EQ(bnb->format, "safetensors");
  const auto ours = linear_weights(bnb->weights), theirs = linear_weights(f32->weights);
  ASSERT_EQ(ours.size(), theirs.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    SCOPED_TRACE(ours[i]->name);
    ASSERT_EQ(ours[i]->type, engine::dtype::nf4);
    ASSERT_EQ(ours[i]->shape, theirs[i]->shape);
    const size_t n = static_cast<size_t>(theirs[i]->numel());
    std::vector<float> x(n);
    for (int64_t r = 0; r < theirs[i]->rows(); ++r) theirs[i]->row_to_f32(r, x.data() + r * theirs[i]->cols());
    const auto direct = engine::quant::quantize_nf4(x.data(), n);
    EXPECT_EQ(std::memcmp(ours[i]->data, direct.packed.data(), direct.packed.size()), 0);
    // Double quantization: each absmax within half the dynamic map's widest gap (0.00704) of
    // its 256-block group's scale; the group scale is at most the largest absmax.
    const float amax = *std::max_element(direct.absmax.begin(), direct.absmax.end());
    for (size_t b = 0; b < direct.absmax.size(); ++b) ASSERT_NEAR(ours[i]->scales[b], direct.absmax[b], amax * 0.00705f) << b;
  }
  // Logits: the checkpoint against quant: nf4 on load of the f32 model (same codes, absmax
  // single- vs double-quantized), and quant: nf4 on the checkpoint keeps it as stored.
  const std::vector<int32_t> ids = {1, 365, 1462, 301, 50, 1021, 9, 707, 26, 1999};
  const auto on_load = all_logits(*runner(f32, false, "nf4"), ids);
  const auto stored = all_logits(*runner(bnb, false), ids);
  const auto stored_q = all_logits(*runner(bnb, false, "nf4"), ids);
  const auto ref = all_logits(*runner(f32, true), ids);
  const int64_t vocab = f32->config.vocab_size;
  EXPECT_EQ(stored, stored_q);
  const double vs_on_load = max_rel_error(stored, on_load, vocab), vs_f32 = max_rel_error(stored, ref, vocab);
  std::printf("[ moat quantize nf4 ] vs quant: nf4 on load %.4f, vs f32 %.4f, top-1 vs f32 %d/%zu\n", vs_on_load, vs_f32,
              same_argmax(stored, ref, vocab), ids.size());
  EXPECT_LT(vs_on_load, 0.05);
  EXPECT_LT(vs_f32, 0.35);
  EXPECT_GE(same_argmax(stored, ref, vocab), 7);
}

// Without double quantization (bnb_4bit_use_double_quant=False: W.absmax stored in f32) the
// checkpoint holds exactly what quant: nf4 computes on load, so the two must give the same
// logits to the bit. The checkpoint is written here in transformers' layout from the fixture.
TEST_F(quantized_fixture, single_level_checkpoint_equals_quant_nf4_on_load) {
  auto f32 = load_shared(src_);
  const fs::path out = dir_.path / "nf4_single";
  fs::create_directories(out);
  std::vector<engine::quant::safetensors_entry> entries;
  // Bytes the entries point at, alive until the write (a moved vector keeps its buffer).
  std::vector<std::vector<uint8_t>> keep;
  auto bytes_of = [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    keep.emplace_back(b, b + n);
    return std::span<const uint8_t>(keep.back());
  };
  for (const auto* t : linear_weights(f32->weights)) {
    const size_t n = static_cast<size_t>(t->numel());
    std::vector<float> x(n);
    for (int64_t r = 0; r < t->rows(); ++r) t->row_to_f32(r, x.data() + r * t->cols());
    const auto q = engine::quant::quantize_nf4(x.data(), n);
    const std::string state = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [" +
                              std::to_string(t->rows()) + ", " + std::to_string(t->cols()) + "]}";
    entries.push_back({t->name, "U8", {static_cast<int64_t>(q.packed.size()), 1}, bytes_of(q.packed.data(), q.packed.size())});
    entries.push_back({t->name + ".absmax", "F32", {static_cast<int64_t>(q.absmax.size())},
                       bytes_of(q.absmax.data(), q.absmax.size() * 4)});
    entries.push_back({t->name + ".quant_map", "F32", {16}, bytes_of(engine::quant::nf4_code.data(), 64)});
    entries.push_back({t->name + ".quant_state.bitsandbytes__nf4", "U8", {static_cast<int64_t>(state.size())},
                       bytes_of(state.data(), state.size())});
  }
  // Everything else as stored (all F32 in this fixture): embedding, norms.
  auto plain = [&](const engine::tensor& t) {
    ASSERT_EQ(t.type, engine::dtype::f32) << t.name;
    entries.push_back({t.name, "F32", t.shape, bytes_of(t.data, static_cast<size_t>(t.numel()) * 4)});
  };
  plain(f32->weights.embed);
  plain(f32->weights.final_norm);
  for (const auto& l : f32->weights.layers) {
    plain(l.attn_norm);
    plain(l.ffn_norm);
  }
  engine::quant::write_safetensors(out / "model.safetensors", entries);
  fs::copy_file(src_ / "config.json", out / "config.json");

  auto bnb = load_shared(out);
  ASSERT_EQ(bnb->weights.layers[0].wq.type, engine::dtype::nf4);
  const std::vector<int32_t> ids = {1, 365, 1462, 301, 50, 1021, 9, 707, 26, 1999};
  for (bool reference : {true, false}) {
    EXPECT_EQ(all_logits(*runner(bnb, reference), ids), all_logits(*runner(f32, reference, "nf4"), ids))
        << (reference ? "reference" : "batched");
  }
}

}  // namespace
}  // namespace moat::test
