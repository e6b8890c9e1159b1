#include "model_spec.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "formats.h"
#include "gguf_header.h"

namespace moat::planner {

std::int64_t model_spec::attention_params_per_layer() const {
  return hidden * q_dim() + 2 * hidden * kv_dim() + q_dim() * hidden;
}

std::int64_t model_spec::total_params() const {
  const std::int64_t per_layer = attention_params_per_layer() + experts * expert_params() +
                                 router_params_per_layer() + norm_params_per_layer();
  return layers * per_layer + embedding_params() + lm_head_params() + hidden /* final norm */;
}

std::int64_t model_spec::active_params() const {
  const std::int64_t per_layer = attention_params_per_layer() +
                                 experts_per_token * expert_params() +
                                 router_params_per_layer() + norm_params_per_layer();
  return layers * per_layer + embedding_params() + lm_head_params() + hidden;
}

// Keeps every later product of shape numbers inside int64: each field at most 2^24 and the
// whole model at most 10^15 parameters (a thousand times the largest model published), checked
// in floating point before any integer arithmetic.
void validate_shape(const model_spec& m, const std::string& source) {
  const std::pair<const char*, std::int64_t> fields[] = {
      {"hidden_size", m.hidden}, {"num_hidden_layers", m.layers}, {"num_attention_heads", m.heads},
      {"num_key_value_heads", m.kv_heads}, {"head_dim", m.head_dim}, {"intermediate_size", m.intermediate},
      {"vocab_size", m.vocab}, {"num_local_experts", m.experts}, {"num_experts_per_tok", m.experts_per_token}};
  for (const auto& [key, v] : fields)
    if (v < 1 || v > (std::int64_t{1} << 24))
      throw plan_error(fmt::format("{}: {} = {} is outside 1..16777216", source, key, v));
  if (m.heads % m.kv_heads != 0)
    throw plan_error(fmt::format("{}: {} attention heads are not a multiple of {} KV heads", source, m.heads,
                                 m.kv_heads));
  if (m.experts_per_token > m.experts)
    throw plan_error(fmt::format("{}: num_experts_per_tok {} > num_local_experts {}", source,
                                 m.experts_per_token, m.experts));
  const double h = static_cast<double>(m.hidden), qd = static_cast<double>(m.heads * m.head_dim);
  const double kvd = static_cast<double>(m.kv_heads * m.head_dim);
  const double layer = 2 * h * qd + 2 * h * kvd + static_cast<double>(m.experts) * 3 * h * static_cast<double>(m.intermediate);
  const double total = static_cast<double>(m.layers) * layer + 2 * static_cast<double>(m.vocab) * h;
  if (total > 1e15)
    throw plan_error(fmt::format("{}: the shape describes {:.3g} parameters, beyond what the planner sizes (1e15)",
                                 source, total));
}

namespace {

model_spec make(std::string name, std::int64_t hidden, std::int64_t layers, std::int64_t heads,
                std::int64_t kv_heads, std::int64_t intermediate, std::int64_t vocab, bool tied,
                std::int64_t max_context, std::int64_t experts = 1, std::int64_t per_token = 1) {
  model_spec m;
  m.name = std::move(name);
  m.source = "preset";
  m.hidden = hidden;
  m.layers = layers;
  m.heads = heads;
  m.kv_heads = kv_heads;
  m.head_dim = hidden / heads;
  m.intermediate = intermediate;
  m.vocab = vocab;
  m.tied_embeddings = tied;
  m.max_context = max_context;
  m.experts = experts;
  m.experts_per_token = per_token;
  return m;
}

}  // namespace

const std::vector<model_spec>& presets() {
  // Numbers from each model's config.json on its official model page:
  //        name             H      L    heads kv  I      vocab   tied  max_ctx
  static const std::vector<model_spec> all = {
      make("llama-3.1-8b", 4096, 32, 32, 8, 14336, 128256, false, 131072),
      make("llama-3.1-70b", 8192, 80, 64, 8, 28672, 128256, false, 131072),
      make("llama-3.1-405b", 16384, 126, 128, 8, 53248, 128256, false, 131072),
      make("llama-2-7b", 4096, 32, 32, 32, 11008, 32000, false, 4096),
      make("llama-2-13b", 5120, 40, 40, 40, 13824, 32000, false, 4096),
      make("llama-2-70b", 8192, 80, 64, 8, 28672, 32000, false, 4096),
      make("mistral-7b", 4096, 32, 32, 8, 14336, 32000, false, 32768),  // v0.1
      make("mixtral-8x7b", 4096, 32, 32, 8, 14336, 32000, false, 32768, 8, 2),
      make("tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, false, 2048),
      // The llama2.c fixture (../shared/fixtures/llama2c-stories260K): its header is
      // dim=64 hidden_dim=172 n_layers=5 n_heads=8 n_kv_heads=4 vocab_size=512 (shared) seq_len=512.
      make("stories260k", 64, 5, 8, 4, 172, 512, true, 512),
  };
  return all;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& m : presets()) names.push_back(m.name);
  return names;
}

namespace {

std::int64_t get_int(simdjson::dom::element doc, const char* key, const std::string& source,
                     bool required, std::int64_t fallback = 0) {
  simdjson::dom::element v;
  if (doc[key].get(v) != simdjson::SUCCESS || v.is_null()) {
    if (required) throw plan_error(fmt::format("{}: missing \"{}\"", source, key));
    return fallback;
  }
  std::int64_t out = 0;
  if (v.get_int64().get(out) != simdjson::SUCCESS)
    throw plan_error(fmt::format("{}: \"{}\" is not an integer", source, key));
  if (out <= 0) throw plan_error(fmt::format("{}: \"{}\" must be positive, got {}", source, key, out));
  return out;
}

model_spec parse_llama2c_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::array<std::int32_t, 7> h{};
  if (!in.read(reinterpret_cast<char*>(h.data()), sizeof(h)))
    throw plan_error(fmt::format("{}: shorter than a llama2.c header (7 int32)", path));
  // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative = untied), seq_len
  const bool tied = h[5] > 0;
  const std::int64_t vocab = tied ? h[5] : -static_cast<std::int64_t>(h[5]);
  for (int i : {0, 1, 2, 3, 4, 6})
    if (h[i] <= 0 || h[i] > (1 << 20))
      throw plan_error(fmt::format("{}: not a llama2.c checkpoint (header field {} = {})", path, i, h[i]));
  if (h[0] % h[3] != 0 || h[3] % h[4] != 0)
    throw plan_error(fmt::format("{}: not a llama2.c checkpoint (dim {} / heads {} / kv heads {})",
                                 path, h[0], h[3], h[4]));
  model_spec m = make(path, h[0], h[2], h[3], h[4], h[1], vocab, tied, h[6]);
  m.source = path;
  validate_shape(m, path);
  return m;
}

std::string file_name_stem(const std::string& path) {
  // ".../tinystories-656K-hf/config.json" reads best as its folder name.
  std::string p = path;
  const auto slash = p.find_last_of('/');
  if (slash != std::string::npos && p.substr(slash + 1) == "config.json") {
    p = p.substr(0, slash);
    const auto prev = p.find_last_of('/');
    return prev == std::string::npos ? p : p.substr(prev + 1);
  }
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace

model_spec parse_hf_config(std::string_view json, const std::string& source) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(simdjson::padded_string(json)).get(doc) != simdjson::SUCCESS || !doc.is_object())
    throw plan_error(fmt::format("{}: not a JSON object", source));

  // A decoder-only causal LM: no encoder-decoder flag, and the architecture (when named) is a
  // *ForCausalLM. BERT, T5, CLIP and the like are refused here, before any arithmetic.
  bool enc_dec = false;
  if (doc["is_encoder_decoder"].get_bool().get(enc_dec) == simdjson::SUCCESS && enc_dec)
    throw plan_error(fmt::format("{}: an encoder-decoder model; the planner sizes decoder-only LMs", source));
  simdjson::dom::array archs;
  if (doc["architectures"].get_array().get(archs) == simdjson::SUCCESS) {
    bool causal = false;
    std::string names;
    for (auto a : archs) {
      std::string_view s;
      if (a.get_string().get(s) != simdjson::SUCCESS) continue;
      names += (names.empty() ? "" : ", ") + std::string(s);
      if (s.ends_with("ForCausalLM")) causal = true;
    }
    if (!causal)
      throw plan_error(fmt::format("{}: architectures [{}] is not a decoder-only causal LM "
                                   "(expected a *ForCausalLM)", source, names));
  }

  model_spec m;
  m.name = file_name_stem(source);
  m.source = source;
  m.hidden = get_int(doc, "hidden_size", source, true);
  m.layers = get_int(doc, "num_hidden_layers", source, true);
  m.heads = get_int(doc, "num_attention_heads", source, true);
  m.kv_heads = get_int(doc, "num_key_value_heads", source, false, m.heads);
  m.head_dim = get_int(doc, "head_dim", source, false, m.hidden / m.heads);
  m.intermediate = get_int(doc, "intermediate_size", source, true);
  m.vocab = get_int(doc, "vocab_size", source, true);
  m.max_context = get_int(doc, "max_position_embeddings", source, false, 0);
  m.experts = get_int(doc, "num_local_experts", source, false, 1);
  m.experts_per_token = get_int(doc, "num_experts_per_tok", source, false, 1);
  bool tied = false;  // Llama, Mistral and Mixtral configs default to untied
  if (doc["tie_word_embeddings"].get_bool().get(tied) == simdjson::SUCCESS) m.tied_embeddings = tied;
  validate_shape(m, source);
  return m;
}

model_spec load_model(std::string_view name_or_path) {
  for (const auto& m : presets())
    if (m.name == name_or_path) return m;
  std::string path(name_or_path);
  std::error_code ec;
  // A Hugging Face model folder stands for its config.json.
  if (std::filesystem::is_directory(path, ec)) {
    const auto cfg = std::filesystem::path(path) / "config.json";
    if (!std::filesystem::is_regular_file(cfg, ec))
      throw plan_error(fmt::format("--model '{}': a folder without a config.json", path));
    path = cfg.string();
  }
  std::ifstream in(path, std::ios::binary);
  if (!std::filesystem::is_regular_file(path, ec) || !in) {
    throw plan_error(fmt::format("--model '{}': neither a preset ({}) nor a readable file", path,
                                 fmt::join(preset_names(), ", ")));
  }
  if (path.ends_with(".bin")) return parse_llama2c_header(path);
  if (path.ends_with(".gguf")) return read_gguf_shape(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_hf_config(text, path);
}

}  // namespace moat::planner
