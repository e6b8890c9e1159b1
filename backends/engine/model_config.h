// model_config: the shape of a Llama-family decoder (Llama 2/3/3.x, TinyLlama, SmolLM, Mistral
// without sliding window), read once at load time and immutable afterwards.
//
//   auto cfg = moat::engine::parse_hf_config(json_text, "models/tiny/config.json");
//   int32_t kv_dim = cfg.kv_dim();   // n_kv_heads * head_dim
//
// The GGUF variant lives in gguf.h (config_from_gguf) because it needs the metadata reader.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace moat::engine {

// How RoPE pairs the elements of one head vector.
//  rotate_half:    (x[i], x[i + head_dim/2]) for i < head_dim/2 — Hugging Face checkpoints,
//                  whose q/k projection rows were permuted by the HF converter.
//  adjacent_pairs: (x[2i], x[2i+1]) — llama2.c and Meta's original layout; GGUF from
//                  llama.cpp's converter un-permutes q/k, so GGUF uses this one too.
// Both give identical results when the weights are permuted accordingly.
enum class rope_style { rotate_half, adjacent_pairs };

// Llama-3 "rope_type": "llama3" frequency scaling (HF config rope_scaling). With type none the
// inverse frequencies are theta^(-2i/d), unchanged. "linear" divides every inverse frequency by
// factor.
struct rope_scaling {
  enum class kind { none, llama3, linear };
  kind type = kind::none;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int32_t original_max_position_embeddings = 8192;
};

struct model_config {
  std::string architecture = "llama";  // "llama" (the HF LlamaForCausalLM / MistralForCausalLM)
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;           // dim
  int32_t intermediate_size = 0;     // SwiGLU hidden dim
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;            // == n_heads without GQA
  int32_t head_dim = 0;              // usually hidden_size / n_heads
  int32_t max_position_embeddings = 2048;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  rope_style rope = rope_style::rotate_half;
  rope_scaling scaling;
  bool tie_word_embeddings = false;  // lm_head shares the token embedding matrix
  int32_t bos_token_id = 1;
  std::vector<int32_t> eos_token_ids = {2};  // config.json allows a list (Llama 3)

  int32_t q_dim() const { return n_heads * head_dim; }
  int32_t kv_dim() const { return n_kv_heads * head_dim; }

  // Throws model_error naming `source` when a field is missing, non-positive or inconsistent
  // (heads not dividing, n_kv_heads not dividing n_heads, ...).
  void validate(std::string_view source) const;
};

// Parses a Hugging Face config.json. `source` names the file in error messages.
// Unsupported architectures (anything but Llama/Mistral-style decoders) and sliding-window
// attention throw model_error.
model_config parse_hf_config(std::string_view json_text, std::string_view source);
model_config load_hf_config(const std::filesystem::path& config_json);

// The inverse RoPE frequency of pair i (0 <= i < head_dim/2) with scaling applied.
// Shared by every forward pass so they agree bit for bit.
std::vector<float> rope_inv_freq(const model_config& cfg);

}  // namespace moat::engine
