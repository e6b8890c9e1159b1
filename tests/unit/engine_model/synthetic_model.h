// Writes small synthetic checkpoints for the loader tests: a Hugging Face folder (config.json +
// safetensors, optionally sharded, in F32/F16/BF16) and a GGUF file, with random weights.
//
//   synthetic_model m;                       // vocab 32, hidden 8, 1 layer, GQA 2:1
//   m.write_hf(dir);                         // dir/config.json, dir/model.safetensors
//   m.write_gguf(dir / "m.gguf");
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace moat::test {

struct synth_tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

struct synthetic_model {
  int vocab = 32, hidden = 8, inter = 16, layers = 1, heads = 2, kv_heads = 1;
  std::string architecture = "LlamaForCausalLM";
  bool tied = false;
  std::map<std::string, synth_tensor> tensors;  // HF names

  synthetic_model() { build(); }

  void build() {
    tensors.clear();
    std::mt19937 rng(42);
    std::normal_distribution<float> nd(0.0f, 0.5f);
    const int hd = hidden / heads;
    auto add = [&](const std::string& n, std::vector<int64_t> shape, bool norm = false) {
      int64_t count = 1;
      for (auto d : shape) count *= d;
      synth_tensor t{shape, std::vector<float>(static_cast<size_t>(count))};
      for (auto& v : t.values) v = norm ? 1.0f + 0.1f * nd(rng) : nd(rng);
      tensors[n] = std::move(t);
    };
    add("model.embed_tokens.weight", {vocab, hidden});
    if (!tied) add("lm_head.weight", {vocab, hidden});
    add("model.norm.weight", {hidden}, true);
    for (int l = 0; l < layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      add(p + "input_layernorm.weight", {hidden}, true);
      add(p + "post_attention_layernorm.weight", {hidden}, true);
      add(p + "self_attn.q_proj.weight", {heads * hd, hidden});
      add(p + "self_attn.k_proj.weight", {kv_heads * hd, hidden});
      add(p + "self_attn.v_proj.weight", {kv_heads * hd, hidden});
      add(p + "self_attn.o_proj.weight", {hidden, heads * hd});
      add(p + "mlp.gate_proj.weight", {inter, hidden});
      add(p + "mlp.up_proj.weight", {inter, hidden});
      add(p + "mlp.down_proj.weight", {hidden, inter});
    }
  }

  std::string config_json() const {
    return "{\"architectures\": [\"" + architecture + "\"], \"model_type\": \"llama\", \"vocab_size\": " +
           std::to_string(vocab) + ", \"hidden_size\": " + std::to_string(hidden) +
           ", \"intermediate_size\": " + std::to_string(inter) + ", \"num_hidden_layers\": " + std::to_string(layers) +
           ", \"num_attention_heads\": " + std::to_string(heads) + ", \"num_key_value_heads\": " +
           std::to_string(kv_heads) + ", \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, " +
           "\"rope_theta\": 10000.0, \"tie_word_embeddings\": " + (tied ? "true" : "false") +
           ", \"bos_token_id\": 1, \"eos_token_id\": [2, 3]}";
  }

  // dtype: "F32", "F16" or "BF16". Writes the tensors whose names satisfy `keep`.
  template <typename Keep>
  static void write_safetensors(const std::filesystem::path& file, const std::map<std::string, synth_tensor>& ts,
                                const std::string& dtype, Keep keep) {
    std::string header = "{\"__metadata__\": {\"format\": \"pt\"}";
    std::string data;
    for (const auto& [name, t] : ts) {
      if (!keep(name)) continue;
      const size_t begin = data.size();
      for (float v : t.values) {
        if (dtype == "F32") {
          data.append(reinterpret_cast<const char*>(&v), 4);
        } else {
          uint16_t h = dtype == "F16" ? engine::f32_to_f16(v) : static_cast<uint16_t>(std::bit_cast<uint32_t>(v) >> 16);
          data.append(reinterpret_cast<const char*>(&h), 2);
        }
      }
      header += ", \"" + name + "\": {\"dtype\": \"" + dtype + "\", \"shape\": [";
      for (size_t i = 0; i < t.shape.size(); ++i) header += (i ? ", " : "") + std::to_string(t.shape[i]);
      header += "], \"data_offsets\": [" + std::to_string(begin) + ", " + std::to_string(data.size()) + "]}";
    }
    header += "}";
    while (header.size() % 8) header += ' ';
    std::ofstream out(file, std::ios::binary);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << data;
  }

  void write_hf(const std::filesystem::path& dir, const std::string& dtype = "F32") const {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "config.json") << config_json();
    write_safetensors(dir / "model.safetensors", tensors, dtype, [](const std::string&) { return true; });
  }

  // Two shards split by name, plus the index.
  void write_hf_sharded(const std::filesystem::path& dir) const {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "config.json") << config_json();
    auto first = [](const std::string& n) { return n.find("layers") == std::string::npos; };
    write_safetensors(dir / "model-00001-of-00002.safetensors", tensors, "F32", first);
    write_safetensors(dir / "model-00002-of-00002.safetensors", tensors, "F32", [&](const std::string& n) { return !first(n); });
    std::string idx = "{\"metadata\": {}, \"weight_map\": {";
    bool comma = false;
    for (const auto& [name, t] : tensors) {
      idx += std::string(comma ? ", " : "") + "\"" + name + "\": \"model-0000" + (first(name) ? "1" : "2") + "-of-00002.safetensors\"";
      comma = true;
    }
    std::ofstream(dir / "model.safetensors.index.json") << idx << "}}";
  }
};

// A minimal GGUF v3 writer for tests: metadata of every scalar type, arrays, and f32/f16/q8_0
// tensors (given in PyTorch shape order; written with GGML's reversed ne).
class gguf_writer {
 public:
  void u32(const std::string& k, uint32_t v) { kv(k, 4); put(v); }
  void i32(const std::string& k, int32_t v) { kv(k, 5); put(v); }
  void f32(const std::string& k, float v) { kv(k, 6); put(v); }
  void boolean(const std::string& k, bool v) { kv(k, 7); put(static_cast<uint8_t>(v)); }
  void str(const std::string& k, const std::string& v) { kv(k, 8); put_str(v); }
  void u64(const std::string& k, uint64_t v) { kv(k, 10); put(v); }
  void i64(const std::string& k, int64_t v) { kv(k, 11); put(v); }
  void f64(const std::string& k, double v) { kv(k, 12); put(v); }
  void u8(const std::string& k, uint8_t v) { kv(k, 0); put(v); }
  void i16(const std::string& k, int16_t v) { kv(k, 3); put(v); }
  void strs(const std::string& k, const std::vector<std::string>& v) {
    kv(k, 9);
    put(uint32_t{8});
    put(static_cast<uint64_t>(v.size()));
    for (const auto& s : v) put_str(s);
  }
  void f32s(const std::string& k, const std::vector<float>& v) {
    kv(k, 9);
    put(uint32_t{6});
    put(static_cast<uint64_t>(v.size()));
    for (float f : v) put(f);
  }
  void i32s(const std::string& k, const std::vector<int32_t>& v) {
    kv(k, 9);
    put(uint32_t{5});
    put(static_cast<uint64_t>(v.size()));
    for (int32_t x : v) put(x);
  }
  // ggml type: 0 f32, 1 f16, 8 q8_0.
  void tensor(const std::string& name, const synth_tensor& t, uint32_t type) {
    std::string bytes;
    if (type == 0) {
      bytes.assign(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4);
    } else if (type == 1) {
      for (float v : t.values) {
        uint16_t h = engine::f32_to_f16(v);
        bytes.append(reinterpret_cast<const char*>(&h), 2);
      }
    } else {
      for (size_t b = 0; b < t.values.size(); b += 32) {
        float amax = 0;
        for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::abs(t.values[b + i]));
        const float d = amax / 127.0f;
        uint16_t h = engine::f32_to_f16(d);
        bytes.append(reinterpret_cast<const char*>(&h), 2);
        for (size_t i = 0; i < 32; ++i) {
          bytes.push_back(static_cast<char>(static_cast<int8_t>(d == 0 ? 0 : std::lround(t.values[b + i] / d))));
        }
      }
    }
    tensors_.push_back({name, t.shape, type, std::move(bytes)});
  }

  // A tensor of any GGML type with raw bytes (e.g. Q4_1, which moat does not read).
  void tensor_raw(const std::string& name, std::vector<int64_t> shape, uint32_t type, std::string data) {
    tensors_.push_back({name, std::move(shape), type, std::move(data)});
  }

  std::string bytes() const {
    std::string out;
    auto app = [&](const auto& v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    out += "GGUF";
    app(uint32_t{3});
    app(static_cast<uint64_t>(tensors_.size()));
    app(n_kv_);
    out += meta_;
    uint64_t off = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors_) {
      app(static_cast<uint64_t>(t.name.size()));
      out += t.name;
      app(static_cast<uint32_t>(t.shape.size()));
      for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) app(static_cast<uint64_t>(*it));
      app(t.type);
      app(off);
      offsets.push_back(off);
      off += (t.data.size() + 31) / 32 * 32;
    }
    while (out.size() % 32) out.push_back('\0');
    for (const auto& t : tensors_) {
      out += t.data;
      while (out.size() % 32) out.push_back('\0');
    }
    return out;
  }

  void write(const std::filesystem::path& p) const { std::ofstream(p, std::ios::binary) << bytes(); }

 private:
  struct entry {
    std::string name;
    std::vector<int64_t> shape;
    uint32_t type;
    std::string data;
  };
  template <typename T>
  void put(T v) { meta_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void put_str(const std::string& s) {
    put(static_cast<uint64_t>(s.size()));
    meta_ += s;
  }
  void kv(const std::string& k, uint32_t type) {
    put_str(k);
    put(type);
    ++n_kv_;
  }
  std::string meta_;
  uint64_t n_kv_ = 0;
  std::vector<entry> tensors_;
};

// The synthetic model as a llama GGUF, HF names mapped to GGUF names. The q/k rows are stored
// as they are (no permutation), so the GGUF copy runs adjacent-pair RoPE on the same weights:
// the tests compare it with itself in other dtypes, not with the HF copy.
// `extra` runs on the writer before it is saved (add or replace tensors). A tensor whose name is
// in `skip` is left out.
inline void write_synthetic_gguf(const synthetic_model& m, const std::filesystem::path& p, uint32_t type,
                                 const std::function<void(gguf_writer&)>& extra = {}, const std::string& skip = "") {
  gguf_writer w;
  w.str("general.architecture", "llama");
  w.u32("llama.embedding_length", static_cast<uint32_t>(m.hidden));
  w.u32("llama.feed_forward_length", static_cast<uint32_t>(m.inter));
  w.u32("llama.block_count", static_cast<uint32_t>(m.layers));
  w.u32("llama.attention.head_count", static_cast<uint32_t>(m.heads));
  w.u32("llama.attention.head_count_kv", static_cast<uint32_t>(m.kv_heads));
  w.u32("llama.context_length", 64);
  w.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.u32("llama.vocab_size", static_cast<uint32_t>(m.vocab));
  std::map<std::string, std::string> names = {{"model.embed_tokens.weight", "token_embd.weight"},
                                              {"lm_head.weight", "output.weight"},
                                              {"model.norm.weight", "output_norm.weight"}};
  const char* parts[][2] = {{"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"},
                            {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
                            {"self_attn.v_proj", "attn_v"}, {"self_attn.o_proj", "attn_output"},
                            {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"}, {"mlp.down_proj", "ffn_down"}};
  for (int l = 0; l < m.layers; ++l) {
    for (auto& p2 : parts) {
      names["model.layers." + std::to_string(l) + "." + p2[0] + ".weight"] = "blk." + std::to_string(l) + "." + p2[1] + ".weight";
    }
  }
  for (const auto& [hf, t] : m.tensors) {
    if (names.at(hf) != skip) w.tensor(names.at(hf), t, t.shape.size() == 1 ? 0 : type);
  }
  if (extra) extra(w);
  w.write(p);
}

}  // namespace moat::test
