// Quantize-on-load in the loader (load_options::quant): on a synthetic f16 model written here
// (random weights, a few MB), the quantized weights' source pages are released (the mapping
// counts them, and the process's RssFile drops back), the weights kept as stored (embedding,
// norms) still read their mapping, the CPU runner's logits are bit for bit those of the same
// model quantized by the runner itself (cpu::model_view), an encrypted copy loads with the same
// logits while its decrypted buffer is released only where no kept weight lies, and a shard
// holding only quantized weights is unmapped whole.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "../engine_model/synthetic_model.h"
#include "../support/greedy_logits.h"
#include "cpu/cpu_runner.h"
#include "crypto/checkpoint_file.h"
#include "crypto/key.h"
#include "engine/loader.h"
#include "engine/weight_storage.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

// A "Key:   123 kB" line of /proc/self/status, in KiB (-1 when absent).
long status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  return -1;
}

synthetic_model make_model() {
  synthetic_model m;
  // Linear weights of a few MB, so that whole pages of each are released; 2 layers, GQA 2:1.
  m.vocab = 512;
  m.hidden = 512;
  m.inter = 1024;
  m.layers = 2;
  m.heads = 8;
  m.kv_heads = 4;
  m.build();
  return m;
}

std::vector<const engine::tensor*> linear_weights(const engine::model_weights& w) {
  std::vector<const engine::tensor*> out;
  for (const auto& l : w.layers) {
    for (const engine::tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) out.push_back(t);
  }
  out.push_back(&w.lm_head);
  return out;
}

size_t source_bytes(const engine::model_weights& w) {
  size_t n = 0;
  for (const engine::tensor* t : linear_weights(w)) n += t->bytes();
  return n;
}

// Logits after a prompt and after each of `steps` greedy steps, concatenated. `quant` is the
// runner's own options.quant.
std::vector<float> run_logits(const engine::loaded_model& loaded, const std::string& quant, int steps = 3) {
  return test_support::greedy_logits(loaded, {1, 17, 300, 42, 511, 7}, steps, quant);
}

using test_support::expect_bit_identical;

engine::dtype dtype_of(const std::string& q) {
  return q == "int8" ? engine::dtype::int8 : q == "int4" ? engine::dtype::int4 : engine::dtype::nf4;
}

class quantize_on_load : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moat_loadmem_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    model_.write_hf(dir_ / "hf", "F16");
  }
  void TearDown() override { fs::remove_all(dir_); }

  engine::load_options quantized(engine::dtype q, unsigned threads = 2) const {
    engine::load_options o;
    o.quant = q;
    o.threads = threads;
    return o;
  }

  synthetic_model model_ = make_model();
  fs::path dir_;
};

TEST_F(quantize_on_load, releases_the_source_pages_of_quantized_weights) {
  const engine::loaded_model m = engine::load_model(dir_ / "hf", quantized(engine::dtype::int8));
  ASSERT_EQ(m.storage->maps.size(), 1u);
  const engine::mapped_file& map = *m.storage->maps[0];
  EXPECT_FALSE(map.decrypted());
  // Every linear weight is int8 now, in memory of its own; its f16 source (2 bytes per value)
  // is released but for the partial pages at each end.
  size_t src = 0;
  for (const engine::tensor* t : linear_weights(m.weights)) {
    EXPECT_EQ(t->type, engine::dtype::int8) << t->name;
    EXPECT_FALSE(map.contains(t->data, t->bytes())) << t->name;
    src += t->bytes() * 2;
  }
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_GE(map.released_bytes(), src - linear_weights(m.weights).size() * 2 * page);
  // The embedding is served as stored, from the mapping; the norms from a copy of their own
  // (reading them must not map back released pages of a large folio).
  EXPECT_EQ(m.weights.embed.type, engine::dtype::f16);
  EXPECT_TRUE(map.contains(m.weights.embed.data, m.weights.embed.bytes()));
  const engine::tensor& norm = m.weights.layers[1].ffn_norm;
  EXPECT_FALSE(map.contains(norm.data, norm.bytes()));
  std::vector<float> n(static_cast<size_t>(model_.hidden));
  norm.row_to_f32(0, n.data());
  const auto& want_norm = model_.tensors.at("model.layers.1.post_attention_layernorm.weight").values;
  for (size_t i = 0; i < n.size(); ++i) ASSERT_EQ(n[i], engine::f16_to_f32(engine::f32_to_f16(want_norm[i]))) << i;
  std::vector<float> row(static_cast<size_t>(model_.hidden));
  m.weights.embed.row_to_f32(5, row.data());
  const auto& want = model_.tensors.at("model.embed_tokens.weight").values;
  for (size_t i = 0; i < row.size(); ++i) {
    ASSERT_EQ(row[i], engine::f16_to_f32(engine::f32_to_f16(want[5 * row.size() + i]))) << i;
  }
}

TEST_F(quantize_on_load, resident_file_pages_drop_after_quantizing) {
  // RssFile also counts this program's own code as it is first run: run the loader once first.
  engine::load_model(dir_ / "hf", quantized(engine::dtype::nf4));
  const long before = status_kib("RssFile");
  ASSERT_GE(before, 0) << "no RssFile in /proc/self/status";
  size_t src = 0;
  long touched = 0;
  {  // Control: reading every linear weight as stored makes its pages resident.
    const engine::loaded_model plain = engine::load_model(dir_ / "hf");
    src = source_bytes(plain.weights);
    std::vector<float> row(4096);
    for (const engine::tensor* t : linear_weights(plain.weights)) {
      for (int64_t r = 0; r < t->rows(); ++r) t->row_to_f32(r, row.data());
    }
    touched = status_kib("RssFile") - before;
  }
  ASSERT_GT(touched * 1024, static_cast<long>(src / 2)) << "reading the weights did not show in RssFile";
  const engine::loaded_model m = engine::load_model(dir_ / "hf", quantized(engine::dtype::nf4));
  const long after = status_kib("RssFile") - before;
  EXPECT_LT(after * 1024, static_cast<long>(src / 8)) << "RssFile grew by " << after << " KiB for " << src / 1024
                                                      << " KiB of quantized source";
}

TEST_F(quantize_on_load, logits_match_the_runners_own_quantization) {
  const engine::loaded_model plain = engine::load_model(dir_ / "hf");
  for (const std::string q : {"int8", "int4", "nf4"}) {
    SCOPED_TRACE(q);
    const std::vector<float> want = run_logits(plain, q);
    for (unsigned threads : {1u, 3u}) {
      const engine::loaded_model m = engine::load_model(dir_ / "hf", quantized(dtype_of(q), threads));
      EXPECT_EQ(m.weights.layers[0].w_down.type, dtype_of(q));
      expect_bit_identical(run_logits(m, q), want);
      expect_bit_identical(run_logits(m, ""), want);  // the runner serves them as they are
    }
  }
}

TEST_F(quantize_on_load, progress_counts_the_quantized_weights) {
  std::vector<size_t> seen;
  engine::load_options o = quantized(engine::dtype::int4);
  o.progress = [&](size_t done, size_t total) {
    EXPECT_EQ(total, 2u * 7 + 1);
    seen.push_back(done);
  };
  engine::load_model(dir_ / "hf", o);
  ASSERT_EQ(seen.size(), 15u);
  EXPECT_EQ(seen.back(), 15u);
}

TEST_F(quantize_on_load, a_shard_of_quantized_weights_only_is_unmapped) {
  const fs::path dir = dir_ / "sharded";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << model_.config_json();
  auto linear = [](const std::string& n) { return n.find("_proj") != std::string::npos; };
  synthetic_model::write_safetensors(dir / "a.safetensors", model_.tensors, "F16", [&](const std::string& n) { return !linear(n); });
  synthetic_model::write_safetensors(dir / "b.safetensors", model_.tensors, "F16", linear);
  std::string idx = "{\"weight_map\": {";
  for (const auto& [name, t] : model_.tensors) {
    idx += std::string(idx.back() == '{' ? "" : ", ") + "\"" + name + "\": \"" + (linear(name) ? "b" : "a") + ".safetensors\"";
  }
  std::ofstream(dir / "model.safetensors.index.json") << idx << "}}";

  const engine::loaded_model m = engine::load_model(dir, quantized(engine::dtype::int8));
  ASSERT_EQ(m.storage->maps.size(), 1u);  // b.safetensors is gone
  EXPECT_EQ(m.storage->maps[0]->path().filename(), "a.safetensors");
  expect_bit_identical(run_logits(m, "int8"), run_logits(engine::load_model(dir_ / "hf"), "int8"));
}

TEST_F(quantize_on_load, an_encrypted_checkpoint_is_released_only_where_nothing_reads_it) {
  const fs::path key = dir_ / "model.key";
  crypto::write_key_file(key.string(), crypto::generate_key());
  const fs::path enc = dir_ / "enc";
  fs::create_directories(enc);
  fs::copy_file(dir_ / "hf" / "config.json", enc / "config.json");
  crypto::encrypt_file((dir_ / "hf" / "model.safetensors").string(), (enc / "model.safetensors").string(),
                       crypto::load_key({.key_file = key.string(), .key_env = {}}), {.chunk_bytes = 64 * 1024, .progress = {}});
  engine::load_options o = quantized(engine::dtype::int4);
  o.key = crypto::key_source{.key_file = key.string(), .key_env = {}};
  const engine::loaded_model m = engine::load_model(enc, o);
  ASSERT_EQ(m.storage->maps.size(), 1u);
  const engine::mapped_file& map = *m.storage->maps[0];
  ASSERT_TRUE(map.decrypted());
  EXPECT_GT(map.released_bytes(), source_bytes(engine::load_model(dir_ / "hf").weights) / 2);
  // The kept weights still read their (not released) decrypted bytes: same logits as plaintext.
  const engine::loaded_model plain = engine::load_model(dir_ / "hf", quantized(engine::dtype::int4));
  expect_bit_identical(run_logits(m, ""), run_logits(plain, ""));
  std::vector<float> a(static_cast<size_t>(model_.hidden)), b(a.size());
  for (int64_t r : {0, 255, 511}) {
    m.weights.embed.row_to_f32(r, a.data());
    plain.weights.embed.row_to_f32(r, b.data());
    EXPECT_EQ(a, b) << r;
  }
}

TEST_F(quantize_on_load, as_stored_loads_release_nothing) {
  const engine::loaded_model m = engine::load_model(dir_ / "hf");
  ASSERT_EQ(m.storage->maps.size(), 1u);
  EXPECT_EQ(m.storage->maps[0]->released_bytes(), 0u);
  EXPECT_EQ(m.weights.layers[0].wq.type, engine::dtype::f16);
}

TEST_F(quantize_on_load, an_odd_row_length_is_refused_for_nf4) {
  synthetic_model odd;
  odd.hidden = 8;
  odd.inter = 15;  // w_down is {8, 15}
  odd.build();
  odd.write_hf(dir_ / "odd", "F16");
  EXPECT_THROW(engine::load_model(dir_ / "odd", quantized(engine::dtype::nf4)), engine::model_error);
  EXPECT_NO_THROW(engine::load_model(dir_ / "odd", quantized(engine::dtype::int4)));
}

}  // namespace
}  // namespace moat::test
