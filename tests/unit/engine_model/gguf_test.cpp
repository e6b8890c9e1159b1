// The GGUF reader: every metadata type, arrays, tensor directory, and the errors for bad magic,
// bad versions and truncation; plus the llama GGUF fixture and a synthetic Q8_0 model.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "engine/gguf.h"
#include "engine/loader.h"
#include "engine/model_error.h"
#include "synthetic_model.h"
#include "test_support.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / ("moat_gguf_" + std::to_string(::getpid()) + "_" + name);
}

TEST(gguf, reads_every_metadata_type_and_arrays) {
  gguf_writer w;
  w.u8("a.u8", 200);
  w.i16("a.i16", -3);
  w.u32("a.u32", 4000000000u);
  w.i32("a.i32", -7);
  w.u64("a.u64", 1ull << 40);
  w.i64("a.i64", -(1ll << 40));
  w.f32("a.f32", 0.5f);
  w.f64("a.f64", 0.25);
  w.boolean("a.bool", true);
  w.str("a.str", "héllo");
  w.strs("a.strs", {"x", "", "zz"});
  w.f32s("a.f32s", {1.5f, -2.0f});
  w.i32s("a.i32s", {3, -4, 5});
  const auto p = temp_file("types.gguf");
  w.write(p);
  auto g = engine::gguf_file::open(p);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->get_int("a.u8"), 200);
  EXPECT_EQ(g->get_int("a.i16"), -3);
  EXPECT_EQ(g->get_int("a.u32"), 4000000000ll);
  EXPECT_EQ(g->get_int("a.i32"), -7);
  EXPECT_EQ(g->get_int("a.u64"), 1ll << 40);
  EXPECT_EQ(g->get_int("a.i64"), -(1ll << 40));
  EXPECT_DOUBLE_EQ(g->get_float("a.f32"), 0.5);
  EXPECT_DOUBLE_EQ(g->get_float("a.f64"), 0.25);
  EXPECT_EQ(g->get_int("a.bool"), 1);
  EXPECT_EQ(g->get_string("a.str"), "héllo");
  auto strs = g->get_strings("a.strs");
  ASSERT_EQ(strs.size(), 3u);
  EXPECT_EQ(strs[2], "zz");
  EXPECT_EQ(std::vector<double>(g->get_floats("a.f32s").begin(), g->get_floats("a.f32s").end()), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(g->get_ints("a.i32s")[1], -4);
  EXPECT_THROW(g->get_string("a.i32"), engine::model_error);
  EXPECT_THROW(g->get_int("nope"), engine::model_error);
  EXPECT_FALSE(g->get_int_or("nope").has_value());
  EXPECT_EQ(g->find("a.strs")->array_size, 3u);
  fs::remove(p);
}

TEST(gguf, rejects_bad_magic_version_and_truncation) {
  const auto p = temp_file("bad.gguf");
  std::ofstream(p, std::ios::binary) << "GGML and more bytes here";
  EXPECT_THROW(engine::gguf_file::open(p), engine::model_error);

  gguf_writer w;
  w.str("general.architecture", "llama");
  w.strs("tokenizer.ggml.tokens", {"a", "b", "c"});
  std::string bytes = w.bytes();
  std::string v2 = bytes;  // v2 and v3 share the layout (v3 only allows big-endian files)
  v2[4] = 2;
  std::ofstream(p, std::ios::binary | std::ios::trunc) << v2;
  EXPECT_EQ(engine::gguf_file::open(p)->version(), 2u);
  std::string v1 = bytes;
  v1[4] = 1;
  std::ofstream(p, std::ios::binary | std::ios::trunc) << v1;
  try {
    engine::gguf_file::open(p);
    ADD_FAILURE();
  } catch (const engine::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("version 1"), std::string::npos) << e.what();
  }
  // Cut inside the header, inside a key, and inside the last string of the array.
  for (size_t cut : {size_t{10}, size_t{30}, bytes.rfind('c')}) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes.substr(0, cut);
    try {
      engine::gguf_file::open(p);
      ADD_FAILURE() << "cut at " << cut;
    } catch (const engine::model_error& e) {
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  fs::remove(p);
}

TEST(gguf, tensor_data_past_the_end_is_truncation) {
  synthetic_model m;
  const auto p = temp_file("cut_model.gguf");
  write_synthetic_gguf(m, p, 0);
  fs::resize_file(p, fs::file_size(p) - 64);
  try {
    engine::load_model(p);
    ADD_FAILURE();
  } catch (const engine::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

TEST(gguf, unsupported_architecture_is_refused) {
  gguf_writer w;
  w.str("general.architecture", "falcon");
  const auto p = temp_file("falcon.gguf");
  w.write(p);
  try {
    engine::load_model(p);
    ADD_FAILURE();
  } catch (const engine::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported architecture 'falcon'"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

// The same weights in F32, F16 and Q8_0. Q8_0 is served as stored (the batched matmul reads the
// blocks and quantizes activations to Q8_0), so its tolerance comes from the format: each weight
// is off by at most 0.5/127 + 1/2048 of its block's absmax (half a step plus the fp16 scale's
// rounding), each activation by 0.5/127, and each of the 7 L + 1 matmuls on a token's path
// passes at most about that relative error on (first order), so
//   max|q8_0 - f32| / max|f32| <= (7 L + 1) * (0.5/127 + 1/2048 + 0.5/127).
// F16 (11-bit mantissa, converted to f32 per row) is held to the same formula with 2^-11.
// Weights are scaled to N(0, 1/fan_in) as in trained models: build()'s N(0, 0.5) makes every
// matmul grow its input ~3x and the net chaotic, where no first-order bound holds.
// tests/unit/quantized_checkpoints checks the Q8_0 path in detail (bit-identical reference path).
TEST(gguf, q8_0_and_f16_models_track_f32) {
  synthetic_model m;
  m.hidden = 32;
  m.inter = 64;
  m.build();
  for (auto& [name, t] : m.tensors) {
    if (t.shape.size() != 2) continue;
    const float k = 1.0f / std::sqrt(static_cast<float>(t.shape[1])) / 0.5f;
    for (float& v : t.values) v *= k;
  }
  const auto p32 = temp_file("m32.gguf"), p16 = temp_file("m16.gguf"), p8 = temp_file("m8.gguf");
  write_synthetic_gguf(m, p32, 0);
  write_synthetic_gguf(m, p16, 1);
  write_synthetic_gguf(m, p8, 8);
  std::vector<std::vector<float>> out;
  for (const auto& p : {p32, p16, p8}) {
    auto model = load_shared(p);
    EXPECT_EQ(model->config.rope, engine::rope_style::adjacent_pairs);
    EXPECT_FALSE(model->config.tie_word_embeddings);
    if (p == p8) {
      EXPECT_EQ(model->weights.layers[0].wq.type, engine::dtype::q8_0);  // not dequantized at load
    }
    auto r = cpu::make_cpu_runner(model, {.threads = 1, .kv_cache_mb = 1});
    std::vector<float> logits(32);
    const std::vector<int32_t> prompt = {1, 7, 30};
    engine::forward_item it;
    it.tokens = prompt;
    it.slot = 0;
    r->forward({&it, 1}, logits);
    out.push_back(logits);
    fs::remove(p);
  }
  const double matmuls = 7.0 * m.layers + 1;
  std::vector<double> f32(out[0].begin(), out[0].end());
  EXPECT_LT(rel_error(out[1], f32), matmuls * std::ldexp(1.0, -11));
  EXPECT_LT(rel_error(out[2], f32), matmuls * (0.5 / 127 + 1.0 / 2048 + 0.5 / 127));
  EXPECT_NE(out[0], out[2]);
}

// Block decoding against llama.cpp's own Python library (tools/make_quant_golden.py): each
// tensor beside what gguf-py dequantizes it to, compared exactly.
TEST(gguf, quantized_blocks_decode_like_llama_cpp) {
  const fs::path golden = fs::path(MOAT_SOURCE_DIR) / "tests/golden/engine_model/quant_blocks.gguf";
  ASSERT_TRUE(fs::exists(golden)) << golden;
  auto g = engine::gguf_file::open(golden);
  for (const char* name : {"q8_0", "q4_0", "f16", "bf16"}) {
    SCOPED_TRACE(name);
    const auto* q = g->find_tensor(name);
    const auto* want = g->find_tensor(std::string(name) + ".expected");
    ASSERT_TRUE(q && want);
    const auto type = engine::dtype_from_ggml(q->type);
    ASSERT_TRUE(type.has_value());
    engine::tensor t{name, *type, {q->ne[1], q->ne[0]}, q->data};
    ASSERT_EQ(t.bytes(), q->bytes);
    const auto* expected = reinterpret_cast<const float*>(want->data);
    std::vector<float> row(static_cast<size_t>(t.cols()));
    int differing = 0;
    for (int64_t r = 0; r < t.rows(); ++r) {
      t.row_to_f32(r, row.data());
      for (int64_t i = 0; i < t.cols(); ++i) differing += row[i] != expected[r * t.cols() + i];
    }
    EXPECT_EQ(differing, 0);
  }
  EXPECT_FALSE(engine::dtype_from_ggml(3).has_value());  // Q4_1 is not read (yet)
}

TEST(gguf, unreadable_types_fail_only_when_used) {
  synthetic_model m;
  m.hidden = 32;
  m.inter = 64;
  m.build();
  const auto p = temp_file("q41.gguf");
  const std::string q4_1_block(20, '\0');  // one Q4_1 block: 32 values in 20 bytes
  write_synthetic_gguf(m, p, 0, [&](gguf_writer& w) { w.tensor_raw("unused.weight", {1, 32}, 3, q4_1_block); });
  EXPECT_NO_THROW(engine::load_model(p));
  std::string rows;
  for (int i = 0; i < 32; ++i) rows += q4_1_block;
  write_synthetic_gguf(m, p, 0, [&](gguf_writer& w) { w.tensor_raw("blk.0.attn_q.weight", {32, 32}, 3, rows); },
                       "blk.0.attn_q.weight");
  try {
    engine::load_model(p);
    ADD_FAILURE();
  } catch (const engine::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_q.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot read"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

TEST(gguf, random_llama_fixture_loads_with_tokenizer_metadata) {
  const std::string rel = "llama2-tiny-random-gguf/llama-2-tiny-random.gguf";
  if (!fixture_exists(rel)) GTEST_SKIP() << "fixture " << rel << " is absent";
  auto m = engine::load_model(fixture(rel));
  EXPECT_EQ(m.format, "gguf");
  EXPECT_EQ(m.config.hidden_size, 8);
  EXPECT_EQ(m.config.n_heads, 2);
  EXPECT_EQ(m.config.head_dim, 4);
  EXPECT_EQ(m.config.vocab_size, 32000);
  EXPECT_EQ(m.config.max_position_embeddings, 4096);
  EXPECT_EQ(m.weights.embed.type, engine::dtype::f16);
  EXPECT_EQ(m.weights.embed.shape, (std::vector<int64_t>{32000, 8}));
  ASSERT_TRUE(m.tokenizer.gguf);
  EXPECT_EQ(m.tokenizer.gguf->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(m.tokenizer.gguf->get_strings("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(m.tokenizer.gguf->get_floats("tokenizer.ggml.scores").size(), 32000u);
  EXPECT_EQ(m.tokenizer.gguf->get_strings("tokenizer.ggml.tokens")[1], "<s>");
}

TEST(gguf, vocab_only_files_parse) {
  for (const char* rel : {"llamacpp-vocab/ggml-vocab-llama-spm.gguf", "llamacpp-vocab/ggml-vocab-gpt-2.gguf"}) {
    if (!fixture_exists(rel)) GTEST_SKIP() << "fixture " << rel << " is absent";
    auto g = engine::gguf_file::open(fixture(rel));
    EXPECT_TRUE(g->tensors().empty());
    EXPECT_GT(g->get_strings("tokenizer.ggml.tokens").size(), 30000u);
  }
  auto g = engine::gguf_file::open(fixture("llamacpp-vocab/ggml-vocab-gpt-2.gguf"));
  EXPECT_EQ(g->get_strings("tokenizer.ggml.merges").size(), 50000u);
}

}  // namespace
}  // namespace moat::test
