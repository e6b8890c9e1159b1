// tools/llama2c_to_hf.py and tools/llama2c_to_gguf.py on stories260K: the HF copy (q/k permuted,
// rotate-half RoPE) and the GGUF copies (adjacent-pair RoPE, F32 and F16) give the same greedy
// tokens as the .bin and the fixture's expected ids.
#include <gtest/gtest.h>

#include <cstdlib>

#include "test_support.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

class converters : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    src_ = fixture("llama2c-stories260K");
    if (!fs::exists(src_ / "stories260K.bin")) {
      skip_ = "fixture llama2c-stories260K is absent";
      return;
    }
    if (std::system("python3 --version > /dev/null 2>&1") != 0) {
      skip_ = "python3 is not installed";
      return;
    }
    out_ = fs::temp_directory_path() / ("moat_convert_" + std::to_string(::getpid()));
    fs::create_directories(out_);
    const std::string tools = std::string(MOAT_SOURCE_DIR) + "/tools/";
    const std::string args = " " + (src_ / "stories260K.bin").string() + " " + (src_ / "tok512.bin").string() + " ";
    for (const std::string& cmd : {"python3 " + tools + "llama2c_to_hf.py" + args + (out_ / "hf").string(),
                                   "python3 " + tools + "llama2c_to_gguf.py" + args + (out_ / "f32.gguf").string(),
                                   "python3 " + tools + "llama2c_to_gguf.py --dtype f16" + args + (out_ / "f16.gguf").string(),
                                   "python3 " + tools + "llama2c_to_gguf.py --dtype q8_0" + args + (out_ / "q8_0.gguf").string()}) {
      if (std::system((cmd + " > /dev/null").c_str()) != 0) failed_ = "converter failed: " + cmd;
    }
  }
  static void TearDownTestSuite() {
    if (!out_.empty()) fs::remove_all(out_);
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(failed_.empty()) << failed_;
  }

  static std::vector<int32_t> expected_ids(size_t n) {
    simdjson::dom::parser parser;
    auto ids = json_ids(parser.load((src_ / "expected_greedy.json").string())["ids"]);
    ids.resize(n);
    return ids;
  }

  static std::vector<int32_t> run(const fs::path& p, std::vector<float>* logits0) {
    auto r = cpu::make_cpu_runner(load_shared(p), {.threads = 2, .kv_cache_mb = 8, .max_slots = 1});
    return greedy(*r, {1}, 64, 0, logits0);
  }

  static inline fs::path src_, out_;
  static inline std::string skip_, failed_;
};

TEST_F(converters, hf_copy_matches_the_original) {
  auto m = engine::load_model(out_ / "hf");
  EXPECT_EQ(m.config.rope, engine::rope_style::rotate_half);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_FALSE(m.tokenizer.tokenizer_model.empty());
  std::vector<float> a, b;
  EXPECT_EQ(run(out_ / "hf", &a), expected_ids(64));
  run(src_ / "stories260K.bin", &b);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
  EXPECT_LT(worst, 1e-4);
}

TEST_F(converters, gguf_copies_match_the_original) {
  auto m = engine::load_model(out_ / "f32.gguf");
  EXPECT_EQ(m.config.rope, engine::rope_style::adjacent_pairs);
  EXPECT_EQ(m.config.n_kv_heads, 4);
  ASSERT_TRUE(m.tokenizer.gguf);
  EXPECT_EQ(m.tokenizer.gguf->get_strings("tokenizer.ggml.tokens")[300], "\u2581ha");
  EXPECT_EQ(m.tokenizer.gguf->get_ints("tokenizer.ggml.token_type")[3], 6);  // <0x00> is a byte token
  std::vector<float> a, b;
  EXPECT_EQ(run(out_ / "f32.gguf", &a), expected_ids(64));
  run(src_ / "stories260K.bin", &b);
  EXPECT_EQ(a, b);  // same weights, same RoPE layout, same kernels: bit-identical
  EXPECT_EQ(engine::load_model(out_ / "f16.gguf").weights.layers[0].wq.type, engine::dtype::f16);
  EXPECT_EQ(run(out_ / "f16.gguf", nullptr), expected_ids(64));
}

// The Q8_0 copy (served as Q8_0 blocks) stays close to the f32 original.
TEST_F(converters, q8_0_copy_tracks_the_original) {
  auto g = engine::gguf_file::open(out_ / "q8_0.gguf");
  EXPECT_EQ(g->find_tensor("blk.0.attn_q.weight")->type, 8u);   // Q8_0
  EXPECT_EQ(g->find_tensor("blk.0.ffn_down.weight")->type, 1u);  // 172 columns: F16 fallback
  std::vector<float> q, f;
  const auto ids = run(out_ / "q8_0.gguf", &q);
  run(src_ / "stories260K.bin", &f);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(q[i] - f[i])));
    scale = std::max(scale, static_cast<double>(std::abs(f[i])));
  }
  EXPECT_LT(worst / scale, 2e-2);
  EXPECT_GT(worst, 0.0);  // it really is quantized
  const auto want = expected_ids(64);
  EXPECT_TRUE(std::equal(want.begin(), want.begin() + 8, ids.begin()));
}

}  // namespace
}  // namespace moat::test
