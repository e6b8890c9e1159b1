// Loader behaviour on small synthetic checkpoints written by the test: what loads, and the
// exact errors for missing tensors, wrong shapes, truncated files and unsupported architectures.
#include <gtest/gtest.h>

#include <fstream>

#include "engine/loader.h"
#include "engine/model_error.h"
#include "synthetic_model.h"
#include "test_support.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

class loader_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moat_loader_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Expects load_model(p) to throw a model_error whose message contains every fragment.
  static void expect_error(const fs::path& p, std::initializer_list<std::string> fragments) {
    try {
      engine::load_model(p);
      ADD_FAILURE() << "loading " << p << " did not throw";
    } catch (const engine::model_error& e) {
      for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }

  std::vector<float> run(const fs::path& p, const std::vector<int32_t>& prompt) {
    auto r = cpu::make_cpu_runner(load_shared(p), {.threads = 1, .kv_cache_mb = 1});
    std::vector<float> logits(static_cast<size_t>(r->config().vocab_size));
    engine::forward_item it{0, prompt, 0, false};
    r->forward({&it, 1}, logits);
    return logits;
  }

  fs::path dir_;
};

TEST_F(loader_test, hf_folder_loads_config_and_weights) {
  synthetic_model m;
  m.write_hf(dir_);
  auto lm = engine::load_model(dir_);
  EXPECT_EQ(lm.format, "safetensors");
  EXPECT_EQ(lm.config.vocab_size, 32);
  EXPECT_EQ(lm.config.n_kv_heads, 1);
  EXPECT_EQ(lm.config.head_dim, 4);
  EXPECT_EQ(lm.config.eos_token_ids, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(lm.weights.layers.size(), 1u);
  EXPECT_EQ(lm.weights.layers[0].wk.shape, (std::vector<int64_t>{4, 8}));
  float row[8];
  lm.weights.lm_head.row_to_f32(3, row);
  EXPECT_EQ(row[5], m.tensors["lm_head.weight"].values[3 * 8 + 5]);
  EXPECT_EQ(engine::load_model(dir_ / "model.safetensors").config.vocab_size, 32);  // a file names its folder
  EXPECT_EQ(engine::load_model(dir_ / "config.json").format, "safetensors");
}

TEST_F(loader_test, generation_config_adds_end_tokens) {
  synthetic_model m;
  m.write_hf(dir_);
  std::ofstream(dir_ / "generation_config.json") << R"({"bos_token_id": 1, "eos_token_id": [3, 7, 999]})";
  auto lm = engine::load_model(dir_);
  EXPECT_EQ(lm.config.eos_token_ids, (std::vector<int32_t>{2, 3, 7}));  // 999 is outside the vocabulary
  EXPECT_FALSE(lm.tokenizer.generation_config_json.empty());
  std::ofstream(dir_ / "generation_config.json", std::ios::trunc) << "{not json";
  EXPECT_EQ(engine::load_model(dir_).config.eos_token_ids, (std::vector<int32_t>{2, 3}));
}

TEST_F(loader_test, sharded_equals_single_file) {
  synthetic_model m;
  m.write_hf(dir_ / "single");
  m.write_hf_sharded(dir_ / "sharded");
  EXPECT_EQ(run(dir_ / "single", {1, 5, 9}), run(dir_ / "sharded", {1, 5, 9}));
}

TEST_F(loader_test, f16_and_bf16_checkpoints_match_f32_within_their_precision) {
  synthetic_model m;
  m.write_hf(dir_ / "f32", "F32");
  m.write_hf(dir_ / "f16", "F16");
  m.write_hf(dir_ / "bf16", "BF16");
  const auto a = run(dir_ / "f32", {1, 5, 9}), b = run(dir_ / "f16", {1, 5, 9}), c = run(dir_ / "bf16", {1, 5, 9});
  EXPECT_EQ(engine::load_model(dir_ / "bf16").weights.layers[0].wq.type, engine::dtype::bf16);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], 1e-2) << i;
    EXPECT_NEAR(a[i], c[i], 1e-1) << i;
  }
  EXPECT_NE(a, c);  // bf16 really was read as bf16, not reinterpreted as f32
}

TEST_F(loader_test, tied_embeddings_fall_back_both_ways) {
  synthetic_model m;
  m.tied = true;
  m.build();
  m.write_hf(dir_);
  auto lm = engine::load_model(dir_);
  EXPECT_EQ(lm.weights.lm_head.data, lm.weights.embed.data);
}

TEST_F(loader_test, missing_tensor_is_named) {
  synthetic_model m;
  m.tensors.erase("model.layers.0.mlp.up_proj.weight");
  m.write_hf(dir_);
  expect_error(dir_, {"missing tensor", "model.layers.0.mlp.up_proj.weight"});
}

TEST_F(loader_test, untied_model_without_lm_head_fails) {
  synthetic_model m;
  m.tensors.erase("lm_head.weight");
  m.write_hf(dir_);
  expect_error(dir_, {"lm_head.weight"});
}

TEST_F(loader_test, wrong_shape_is_named) {
  synthetic_model m;
  m.tensors["model.layers.0.self_attn.k_proj.weight"].shape = {8, 4};
  m.write_hf(dir_);
  expect_error(dir_, {"model.layers.0.self_attn.k_proj.weight", "[8, 4]", "expected [4, 8]"});
}

TEST_F(loader_test, truncated_safetensors_is_reported) {
  synthetic_model m;
  m.write_hf(dir_);
  const auto file = dir_ / "model.safetensors";
  fs::resize_file(file, fs::file_size(file) - 10);
  expect_error(dir_, {"truncated", "model.safetensors"});
  fs::resize_file(file, 4);
  expect_error(dir_, {"truncated"});
}

TEST_F(loader_test, unsupported_architecture_is_refused) {
  synthetic_model m;
  m.architecture = "GPT2LMHeadModel";
  m.write_hf(dir_);
  // model_type is llama in the synthetic config; use a config that really names GPT-2.
  std::ofstream(dir_ / "config.json") << R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 8})";
  expect_error(dir_, {"unsupported architecture", "GPT2LMHeadModel"});
}

TEST_F(loader_test, config_errors_name_the_key) {
  EXPECT_THROW(engine::parse_hf_config("{", "c.json"), engine::model_error);
  try {
    engine::parse_hf_config(R"({"model_type": "llama", "hidden_size": 8})", "c.json");
    ADD_FAILURE();
  } catch (const engine::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("c.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("vocab_size"), std::string::npos);
  }
  const std::string base = R"({"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 3)";
  EXPECT_THROW(engine::parse_hf_config(base + "}", "c.json"), engine::model_error);  // 2 % 3
  EXPECT_THROW(engine::parse_hf_config(R"({"model_type": "llama", "vocab_size": "many"})", "c.json"), engine::model_error);
}

TEST_F(loader_test, llama3_rope_scaling_is_parsed_and_applied) {
  const std::string cfg = R"({"model_type": "llama", "vocab_size": 8, "hidden_size": 128, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 1, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}})";
  const auto c = engine::parse_hf_config(cfg, "c.json");
  EXPECT_EQ(c.scaling.type, engine::rope_scaling::kind::llama3);
  const auto inv = engine::rope_inv_freq(c);
  ASSERT_EQ(inv.size(), 64u);
  // High frequencies (short wavelengths) are untouched; the lowest is divided by the factor.
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  const double unscaled_last = 1.0 / std::pow(500000.0, 126.0 / 128.0);
  EXPECT_NEAR(inv[63], unscaled_last / 8.0, unscaled_last * 1e-6);
}

TEST_F(loader_test, transformers5_rope_parameters_are_read) {
  const std::string cfg = R"({"model_type": "llama", "vocab_size": 8, "hidden_size": 128, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 1,
    "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})";
  const auto c = engine::parse_hf_config(cfg, "c.json");
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.scaling.type, engine::rope_scaling::kind::llama3);
  EXPECT_EQ(c.scaling.factor, 8.0f);
  const std::string plain = R"({"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 1, "rope_parameters": {"rope_theta": 1000.0, "rope_type": "default"}})";
  EXPECT_EQ(engine::parse_hf_config(plain, "c.json").rope_theta, 1000.0f);
  EXPECT_EQ(engine::parse_hf_config(plain, "c.json").scaling.type, engine::rope_scaling::kind::none);
  const std::string yarn = R"({"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 1, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})";
  EXPECT_THROW(engine::parse_hf_config(yarn, "c.json"), engine::model_error);
}

TEST_F(loader_test, missing_path_and_unknown_format) {
  expect_error(dir_ / "nope", {"no such file"});
  std::ofstream(dir_ / "weights.xyz") << "hello world";
  expect_error(dir_ / "weights.xyz", {"unrecognized model format"});
  fs::create_directories(dir_ / "empty");
  expect_error(dir_ / "empty", {"config.json"});
}

TEST_F(loader_test, truncated_llama2c_checkpoint_is_reported) {
  const fs::path src = fixture("llama2c-stories260K/stories260K.bin");
  if (!fs::exists(src)) GTEST_SKIP() << "fixture llama2c-stories260K is absent";
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir_ / "cut.bin", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_error(dir_ / "cut.bin", {"truncated", "cut.bin"});
}

}  // namespace
}  // namespace moat::test
