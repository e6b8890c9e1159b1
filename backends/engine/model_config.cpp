#include "engine/model_config.h"

#include <simdjson.h>

#include <cmath>
#include <fstream>
#include <numbers>
#include <sstream>

#include "engine/model_error.h"

namespace moat::engine {

namespace {

std::string where(std::string_view source, std::string_view key) {
  return std::string(source) + ": " + std::string(key);
}

// Reads an optional integer; throws on a wrong type so a typo'd config fails loudly.
bool get_int(simdjson::dom::object& o, std::string_view key, int32_t& out, std::string_view source) {
  auto v = o[key];
  if (v.error() == simdjson::NO_SUCH_FIELD) return false;
  if (v.is_null()) return false;
  int64_t i = 0;
  if (v.get_int64().get(i) != simdjson::SUCCESS) {
    double d = 0;
    if (v.get_double().get(d) != simdjson::SUCCESS || d != std::floor(d)) {
      throw model_error(where(source, key) + " must be an integer");
    }
    i = static_cast<int64_t>(d);
  }
  if (i < INT32_MIN || i > INT32_MAX) throw model_error(where(source, key) + " is out of range");
  out = static_cast<int32_t>(i);
  return true;
}

bool get_float(simdjson::dom::object& o, std::string_view key, float& out, std::string_view source) {
  auto v = o[key];
  if (v.error() == simdjson::NO_SUCH_FIELD || v.is_null()) return false;
  double d = 0;
  if (v.get_double().get(d) != simdjson::SUCCESS) {
    int64_t i = 0;
    if (v.get_int64().get(i) != simdjson::SUCCESS) throw model_error(where(source, key) + " must be a number");
    d = static_cast<double>(i);
  }
  out = static_cast<float>(d);
  return true;
}

bool get_bool(simdjson::dom::object& o, std::string_view key, bool& out, std::string_view source) {
  auto v = o[key];
  if (v.error() == simdjson::NO_SUCH_FIELD || v.is_null()) return false;
  if (v.get_bool().get(out) != simdjson::SUCCESS) throw model_error(where(source, key) + " must be a boolean");
  return true;
}

std::string get_string(simdjson::dom::object& o, std::string_view key) {
  std::string_view s;
  if (o[key].get_string().get(s) != simdjson::SUCCESS) return {};
  return std::string(s);
}

void require(bool ok, std::string_view source, std::string_view key) {
  if (!ok) throw model_error(where(source, key) + " is missing");
}

}  // namespace

void model_config::validate(std::string_view source) const {
  auto positive = [&](int32_t v, std::string_view key) {
    if (v <= 0) throw model_error(where(source, key) + " must be positive, got " + std::to_string(v));
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(n_layers, "num_hidden_layers");
  positive(n_heads, "num_attention_heads");
  positive(n_kv_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(max_position_embeddings, "max_position_embeddings");
  if (n_heads % n_kv_heads != 0) {
    throw model_error(std::string(source) + ": num_attention_heads (" + std::to_string(n_heads) +
                      ") is not a multiple of num_key_value_heads (" + std::to_string(n_kv_heads) + ")");
  }
  if (head_dim % 2 != 0) throw model_error(where(source, "head_dim") + " must be even for RoPE");
  if (!(rms_norm_eps > 0.0f)) throw model_error(where(source, "rms_norm_eps") + " must be positive");
  if (!(rope_theta > 0.0f)) throw model_error(where(source, "rope_theta") + " must be positive");
  if (bos_token_id >= vocab_size) throw model_error(where(source, "bos_token_id") + " is outside the vocabulary");
}

model_config parse_hf_config(std::string_view json_text, std::string_view source) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(json_text.data(), json_text.size()).get(doc); err) {
    throw model_error(std::string(source) + ": not valid JSON: " + simdjson::error_message(err));
  }
  simdjson::dom::object o;
  if (doc.get_object().get(o) != simdjson::SUCCESS) throw model_error(std::string(source) + ": not a JSON object");

  const std::string model_type = get_string(o, "model_type");
  std::string arch_name;
  simdjson::dom::array archs;
  if (o["architectures"].get_array().get(archs) == simdjson::SUCCESS && archs.size() > 0) {
    std::string_view a;
    if (archs.at(0).get_string().get(a) == simdjson::SUCCESS) arch_name = a;
  }
  const bool llama_like = model_type == "llama" || model_type == "mistral" ||
                          arch_name == "LlamaForCausalLM" || arch_name == "MistralForCausalLM";
  if (!llama_like) {
    throw model_error(std::string(source) + ": unsupported architecture '" +
                      (arch_name.empty() ? model_type : arch_name) +
                      "' (supported: LlamaForCausalLM, MistralForCausalLM)");
  }

  model_config c;
  c.architecture = "llama";
  require(get_int(o, "vocab_size", c.vocab_size, source), source, "vocab_size");
  require(get_int(o, "hidden_size", c.hidden_size, source), source, "hidden_size");
  require(get_int(o, "intermediate_size", c.intermediate_size, source), source, "intermediate_size");
  require(get_int(o, "num_hidden_layers", c.n_layers, source), source, "num_hidden_layers");
  require(get_int(o, "num_attention_heads", c.n_heads, source), source, "num_attention_heads");
  c.n_kv_heads = c.n_heads;
  get_int(o, "num_key_value_heads", c.n_kv_heads, source);
  c.head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
  get_int(o, "head_dim", c.head_dim, source);
  get_int(o, "max_position_embeddings", c.max_position_embeddings, source);
  get_float(o, "rms_norm_eps", c.rms_norm_eps, source);
  get_float(o, "rope_theta", c.rope_theta, source);
  get_bool(o, "tie_word_embeddings", c.tie_word_embeddings, source);
  get_int(o, "bos_token_id", c.bos_token_id, source);

  auto eos = o["eos_token_id"];
  if (eos.error() == simdjson::SUCCESS && !eos.is_null()) {
    c.eos_token_ids.clear();
    simdjson::dom::array list;
    if (eos.get_array().get(list) == simdjson::SUCCESS) {
      for (auto e : list) {
        int64_t id = 0;
        if (e.get_int64().get(id) != simdjson::SUCCESS) throw model_error(where(source, "eos_token_id") + " must hold integers");
        c.eos_token_ids.push_back(static_cast<int32_t>(id));
      }
    } else {
      int32_t id = 0;
      get_int(o, "eos_token_id", id, source);
      c.eos_token_ids.push_back(id);
    }
  }

  const std::string act = get_string(o, "hidden_act");
  if (!act.empty() && act != "silu") throw model_error(where(source, "hidden_act") + " '" + act + "' is not supported (only silu)");
  bool bias = false;
  if (get_bool(o, "attention_bias", bias, source) && bias) throw model_error(where(source, "attention_bias") + " = true is not supported");
  if (get_bool(o, "mlp_bias", bias, source) && bias) throw model_error(where(source, "mlp_bias") + " = true is not supported");
  int32_t window = 0;
  if (get_int(o, "sliding_window", window, source) && window > 0 && window < c.max_position_embeddings) {
    throw model_error(where(source, "sliding_window") + " attention is not supported");
  }

  // transformers < 5 writes rope_theta + rope_scaling; 5.x writes one rope_parameters object
  // holding rope_theta, rope_type and the scaling fields. Read whichever is there.
  simdjson::dom::object rs;
  std::string_view rs_key = "rope_scaling";
  if (o["rope_parameters"].get_object().get(rs) == simdjson::SUCCESS) {
    rs_key = "rope_parameters";
    get_float(rs, "rope_theta", c.rope_theta, source);
  } else if (o["rope_scaling"].get_object().get(rs) != simdjson::SUCCESS) {
    rs = {};
    rs_key = {};
  }
  if (!rs_key.empty()) {
    const std::string k(rs_key);
    std::string type = get_string(rs, "rope_type");
    if (type.empty()) type = get_string(rs, "type");
    if (type == "llama3") {
      c.scaling.type = rope_scaling::kind::llama3;
      require(get_float(rs, "factor", c.scaling.factor, source), source, k + ".factor");
      get_float(rs, "low_freq_factor", c.scaling.low_freq_factor, source);
      get_float(rs, "high_freq_factor", c.scaling.high_freq_factor, source);
      get_int(rs, "original_max_position_embeddings", c.scaling.original_max_position_embeddings, source);
    } else if (type == "linear") {
      c.scaling.type = rope_scaling::kind::linear;
      require(get_float(rs, "factor", c.scaling.factor, source), source, k + ".factor");
    } else if (type != "default" && !type.empty()) {
      throw model_error(where(source, k) + " type '" + type + "' is not supported (default, llama3, linear)");
    }
  }
  c.rope = rope_style::rotate_half;  // HF checkpoints always store q/k permuted for rotate-half
  c.validate(source);
  return c;
}

model_config load_hf_config(const std::filesystem::path& config_json) {
  std::ifstream in(config_json, std::ios::binary);
  if (!in) throw model_error(config_json.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_hf_config(ss.str(), config_json.string());
}

std::vector<float> rope_inv_freq(const model_config& cfg) {
  const int32_t half = cfg.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int32_t i = 0; i < half; ++i) {
    // Same expression as HF: 1 / theta^(2i/d), computed in double then rounded once.
    double f = 1.0 / std::pow(static_cast<double>(cfg.rope_theta), (2.0 * i) / cfg.head_dim);
    const auto& s = cfg.scaling;
    if (s.type == rope_scaling::kind::linear) {
      f /= s.factor;
    } else if (s.type == rope_scaling::kind::llama3) {
      // HF _compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones kept,
      // the band between is interpolated smoothly.
      const double old_ctx = s.original_max_position_embeddings;
      const double low_wavelen = old_ctx / s.low_freq_factor;
      const double high_wavelen = old_ctx / s.high_freq_factor;
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
    inv[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return inv;
}

}  // namespace moat::engine
