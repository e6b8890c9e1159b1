// The shape of a Llama-family decoder and the parameter counts that follow from it.
//
//   auto m = moat::planner::load_model("llama-3.1-8b");          // a preset, or
//   auto f = moat::planner::load_model("path/to/config.json");   // a Hugging Face config, or
//   auto s = moat::planner::load_model("stories260K.bin");       // a llama2.c checkpoint header
//   m.total_params();   // 8,030,261,248
//
// Counts are computed from the shape (never looked up), so a preset and the config.json it was
// taken from give the same numbers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moat::planner {

struct model_spec {
  std::string name;
  std::string source;          // "preset", or the path it was read from
  std::int64_t hidden = 0;     // hidden_size (H)
  std::int64_t layers = 0;     // num_hidden_layers (L)
  std::int64_t heads = 0;      // num_attention_heads
  std::int64_t kv_heads = 0;   // num_key_value_heads (GQA when < heads)
  std::int64_t head_dim = 0;   // hidden / heads unless the config says otherwise
  std::int64_t intermediate = 0;  // one expert's SwiGLU width (I)
  std::int64_t vocab = 0;
  bool tied_embeddings = false;
  std::int64_t max_context = 0;   // max_position_embeddings
  std::int64_t experts = 1;       // num_local_experts (1 = dense)
  std::int64_t experts_per_token = 1;

  std::int64_t q_dim() const { return heads * head_dim; }
  std::int64_t kv_dim() const { return kv_heads * head_dim; }

  // Parameters of one transformer block, by part. Shapes [out, in]:
  //   q [q_dim, H], k/v [kv_dim, H], o [H, q_dim]; per expert gate/up [I, H], down [H, I];
  //   router [experts, H] when experts > 1; two RMSNorm vectors [H].
  std::int64_t attention_params_per_layer() const;
  std::int64_t expert_params() const { return 3 * hidden * intermediate; }
  std::int64_t router_params_per_layer() const { return experts > 1 ? experts * hidden : 0; }
  std::int64_t norm_params_per_layer() const { return 2 * hidden; }

  std::int64_t embedding_params() const { return vocab * hidden; }       // [V, H]
  std::int64_t lm_head_params() const { return tied_embeddings ? 0 : vocab * hidden; }

  // Every stored parameter (all experts).
  std::int64_t total_params() const;
  // Parameters one token passes through (experts_per_token of the experts); equals
  // total_params() for a dense model.
  std::int64_t active_params() const;
};

// The built-in presets, with the shape numbers of each model's published config.json.
const std::vector<model_spec>& presets();
std::vector<std::string> preset_names();

// A preset name, a Hugging Face config.json (or the model folder holding it), a llama2.c
// `.bin` checkpoint (its 7-int header) or a `.gguf` file (its metadata, see gguf_header.h).
// Throws plan_error (see formats.h) for an unknown name, an unreadable file, or a config that is
// not a decoder-only causal LM.
model_spec load_model(std::string_view name_or_path);

// Checks a shape read from a file: every field in 1..2^24, heads a multiple of KV heads, at most
// 1e15 parameters (so no later product overflows). Throws plan_error naming `source`.
void validate_shape(const model_spec& m, const std::string& source);

// Parses the text of a config.json; `source` names it in messages.
model_spec parse_hf_config(std::string_view json, const std::string& source);

}  // namespace moat::planner
