#include "engine/llama2c.h"

#include <cstring>

#include "engine/model_error.h"
#include "engine/weight_storage.h"

namespace moat::engine {

loaded_model load_llama2c(const std::filesystem::path& file, const std::filesystem::path& tokenizer,
                          const crypto::key_source* key) {
  auto map = mapped_file::open(file, key);
  const auto bytes = map->bytes();
  const std::string name = file.string();
  int32_t h[7];
  if (bytes.size() < sizeof h) throw model_error(name + ": truncated llama2.c checkpoint (no header)");
  std::memcpy(h, bytes.data(), sizeof h);

  loaded_model m;
  m.source = file;
  m.format = "llama2c";
  model_config& c = m.config;
  c.hidden_size = h[0];
  c.intermediate_size = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tie_word_embeddings = h[5] > 0;  // a negative vocab size means a separate classifier follows
  c.vocab_size = h[5] > 0 ? h[5] : -h[5];
  c.max_position_embeddings = h[6];
  c.head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope = rope_style::adjacent_pairs;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.validate(name);

  // Walk the arrays in file order, checking each fits before handing out a pointer.
  const int64_t d = c.hidden_size, kv = c.kv_dim(), ff = c.intermediate_size, L = c.n_layers, v = c.vocab_size;
  size_t off = sizeof h;
  auto next = [&](const std::string& what, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    const size_t need = static_cast<size_t>(n) * sizeof(float);
    if (need > bytes.size() - off) {
      throw model_error(name + ": truncated llama2.c checkpoint: '" + what + "' needs bytes up to " +
                        std::to_string(off + need) + ", file has " + std::to_string(bytes.size()));
    }
    tensor t;
    t.name = what;
    t.type = dtype::f32;
    t.shape = std::move(shape);
    t.data = bytes.data() + off;
    off += need;
    return t;
  };
  // Slices a stacked [L, ...] array into per-layer tensors.
  auto layer_slice = [&](const tensor& all, int64_t l) {
    tensor t = all;
    t.shape.erase(t.shape.begin());
    t.name = all.name + "[" + std::to_string(l) + "]";
    t.data = static_cast<const uint8_t*>(all.data) + static_cast<size_t>(l) * t.numel() * sizeof(float);
    return t;
  };
  const tensor embed = next("token_embedding", {v, d});
  const tensor rms_att = next("rms_att", {L, d});
  const tensor wq = next("wq", {L, d, d});
  const tensor wk = next("wk", {L, kv, d});
  const tensor wv = next("wv", {L, kv, d});
  const tensor wo = next("wo", {L, d, d});
  const tensor rms_ffn = next("rms_ffn", {L, d});
  const tensor w1 = next("w1", {L, ff, d});
  const tensor w2 = next("w2", {L, d, ff});
  const tensor w3 = next("w3", {L, ff, d});
  const tensor rms_final = next("rms_final", {d});
  next("freq_cis_real", {c.max_position_embeddings, c.head_dim / 2});  // legacy, unused
  next("freq_cis_imag", {c.max_position_embeddings, c.head_dim / 2});
  m.weights.embed = embed;
  m.weights.final_norm = rms_final;
  m.weights.lm_head = c.tie_word_embeddings ? embed : next("wcls", {v, d});
  for (int64_t l = 0; l < L; ++l) {
    layer_weights lw;
    lw.attn_norm = layer_slice(rms_att, l);
    lw.wq = layer_slice(wq, l);
    lw.wk = layer_slice(wk, l);
    lw.wv = layer_slice(wv, l);
    lw.wo = layer_slice(wo, l);
    lw.ffn_norm = layer_slice(rms_ffn, l);
    lw.w_gate = layer_slice(w1, l);
    lw.w_down = layer_slice(w2, l);
    lw.w_up = layer_slice(w3, l);
    m.weights.layers.push_back(std::move(lw));
  }
  auto storage = std::make_shared<weight_storage>();
  storage->maps.push_back(std::move(map));
  m.storage = std::move(storage);

  std::filesystem::path tok = tokenizer;
  if (tok.empty()) {
    std::error_code ec;
    for (const char* cand : {"tokenizer.bin", "tok512.bin"}) {
      if (std::filesystem::is_regular_file(file.parent_path() / cand, ec)) tok = file.parent_path() / cand;
    }
  }
  m.tokenizer.llama2c_bin = tok;
  return m;
}

}  // namespace moat::engine
