// Parameter counts from model shapes, checked against hand arithmetic and published totals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "formats.h"
#include "model_spec.h"

namespace moat::planner {
namespace {

// Llama block by hand: q,o [H*H each], k,v [kv_dim*H each], gate/up/down [I*H each], 2 norms [H].
std::int64_t llama_params(std::int64_t H, std::int64_t L, std::int64_t kv_dim, std::int64_t I, std::int64_t V,
                          bool tied) {
  const std::int64_t block = 2 * H * H + 2 * kv_dim * H + 3 * H * I + 2 * H;
  return L * block + V * H * (tied ? 1 : 2) + H;
}

TEST(model_spec, llama_3_1_counts_match_hand_arithmetic) {
  const auto m8 = load_model("llama-3.1-8b");
  EXPECT_EQ(m8.total_params(), llama_params(4096, 32, 8 * 128, 14336, 128256, false));
  EXPECT_EQ(m8.total_params(), 8'030'261'248);
  EXPECT_NEAR(m8.total_params() / 1e9, 8.03, 0.005);

  const auto m70 = load_model("llama-3.1-70b");
  EXPECT_EQ(m70.total_params(), llama_params(8192, 80, 8 * 128, 28672, 128256, false));
  EXPECT_NEAR(m70.total_params() / 1e9, 70.6, 0.05);

  const auto m405 = load_model("llama-3.1-405b");
  EXPECT_EQ(m405.total_params(), llama_params(16384, 126, 8 * 128, 53248, 128256, false));
  EXPECT_NEAR(m405.total_params() / 1e9, 405.9, 0.05);
}

TEST(model_spec, other_presets_match_published_totals) {
  EXPECT_EQ(load_model("llama-2-7b").total_params(), 6'738'415'616);   // Meta's "6.7B"
  EXPECT_NEAR(load_model("llama-2-13b").total_params() / 1e9, 13.02, 0.01);
  EXPECT_NEAR(load_model("llama-2-70b").total_params() / 1e9, 68.98, 0.01);
  EXPECT_NEAR(load_model("mistral-7b").total_params() / 1e9, 7.24, 0.01);
  EXPECT_NEAR(load_model("tinyllama-1.1b").total_params() / 1e9, 1.10, 0.01);
  // Mixtral: 46.7B stored (all 8 experts), about 12.9B through which each token passes (2 of 8).
  const auto mx = load_model("mixtral-8x7b");
  EXPECT_EQ(mx.total_params(), 46'702'792'704);
  EXPECT_EQ(mx.active_params(), mx.total_params() - 6 * 32 * mx.expert_params());
  EXPECT_NEAR(mx.active_params() / 1e9, 12.88, 0.01);
}

TEST(model_spec, stories260k_matches_the_fixture_readme) {
  // The fixtures README: "260,032 are parameters", counted against the file size.
  EXPECT_EQ(load_model("stories260k").total_params(), 260'032);
}

TEST(model_spec, reads_the_fixture_config_and_checkpoint_header) {
  const std::string dir = MOAT_FIXTURES_DIR;
  const std::string cfg = dir + "/tinystories-656K-hf/config.json";
  const std::string bin = dir + "/llama2c-stories260K/stories260K.bin";
  if (!std::filesystem::exists(cfg) || !std::filesystem::exists(bin))
    GTEST_SKIP() << "fixtures absent at " << dir << " (see ../shared/fixtures/README.md)";
  const auto hf = load_model(cfg);
  EXPECT_EQ(hf.name, "tinystories-656K-hf");
  EXPECT_TRUE(hf.tied_embeddings);
  EXPECT_EQ(hf.kv_heads, 4);
  EXPECT_EQ(hf.total_params(), 656'000);  // the README's "656,000 parameters"
  EXPECT_EQ(load_model(dir + "/tinystories-656K-hf").total_params(), 656'000);  // the folder
  const auto c = load_model(bin);
  const auto p = load_model("stories260k");
  EXPECT_EQ(c.total_params(), p.total_params());
  EXPECT_EQ(c.kv_heads, 4);
  EXPECT_TRUE(c.tied_embeddings);
}

TEST(model_spec, a_config_json_gives_the_preset_numbers) {
  const std::string json = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": false,
    "max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3"}})";
  const auto m = parse_hf_config(json, "config.json");
  EXPECT_EQ(m.total_params(), load_model("llama-3.1-8b").total_params());
  EXPECT_EQ(m.head_dim, 128);
}

TEST(model_spec, refuses_what_is_not_a_decoder) {
  const std::string bert = R"({"architectures": ["BertModel"], "hidden_size": 768,
    "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522})";
  try {
    parse_hf_config(bert, "bert/config.json");
    FAIL() << "a BERT config was accepted";
  } catch (const plan_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a decoder-only causal LM"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("BertModel"), std::string::npos) << e.what();
  }
  const std::string t5 = R"({"architectures": ["T5ForConditionalGeneration"], "is_encoder_decoder": true})";
  EXPECT_THROW(parse_hf_config(t5, "t5/config.json"), plan_error);
  EXPECT_THROW(parse_hf_config(R"({"architectures": ["LlamaForCausalLM"]})", "x"), plan_error);  // no shape
  EXPECT_THROW(parse_hf_config("[1, 2]", "x"), plan_error);
  EXPECT_THROW(parse_hf_config("{not json", "x"), plan_error);
  const std::string bad_gqa = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 3, "intermediate_size": 128,
    "vocab_size": 100})";
  EXPECT_THROW(parse_hf_config(bad_gqa, "x"), plan_error);
  // Shapes whose products would overflow are refused, not wrapped.
  const std::string huge = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 16000000,
    "num_hidden_layers": 16000000, "num_attention_heads": 1, "intermediate_size": 16000000, "vocab_size": 16000000})";
  EXPECT_THROW(parse_hf_config(huge, "x"), plan_error);
  const std::string negative = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": -64,
    "num_hidden_layers": 2, "num_attention_heads": 8, "intermediate_size": 128, "vocab_size": 100})";
  EXPECT_THROW(parse_hf_config(negative, "x"), plan_error);
}

TEST(model_spec, a_directory_or_garbage_is_not_a_model) {
  const auto empty = std::filesystem::temp_directory_path() / "moat_planner_empty_model";
  std::filesystem::create_directories(empty);
  EXPECT_THROW(load_model(empty.string()), plan_error);  // a folder without config.json
  std::filesystem::remove(empty);
  const auto junk = std::filesystem::temp_directory_path() / "moat_planner_junk.bin";
  {
    std::ofstream out(junk, std::ios::binary);
    const std::int32_t header[7] = {64, 172, 5, 8, 3, 512, 512};  // 8 heads over 3 KV heads
    out.write(reinterpret_cast<const char*>(header), sizeof(header));
  }
  EXPECT_THROW(load_model(junk.string()), plan_error);
  std::filesystem::remove(junk);
}

TEST(model_spec, unknown_names_list_the_presets) {
  try {
    load_model("llama-9-9000b");
    FAIL();
  } catch (const plan_error& e) {
    EXPECT_NE(std::string(e.what()).find("llama-3.1-405b"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moat::planner
