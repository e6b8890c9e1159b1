#include "engine/loader.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include <cstring>
#include <map>

#include "engine/llama2c.h"
#include "engine/model_error.h"
#include "engine/safetensors.h"
#include "engine/weight_storage.h"

namespace moat::engine {

namespace {

using tensor_map = std::map<std::string, tensor, std::less<>>;

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Takes tensor `name` out of `ts`, checking its shape. `source` names the file for errors.
tensor take(const tensor_map& ts, const std::string& name, std::vector<int64_t> shape, const std::string& source) {
  auto it = ts.find(name);
  if (it == ts.end()) throw model_error(source + ": missing tensor '" + name + "'");
  const tensor& t = it->second;
  if (t.data == nullptr) {
    throw model_error(source + ": tensor '" + name + "' has a GGML type moat cannot read (supported: F32, F16, BF16, Q8_0, Q4_0)");
  }
  if (t.shape != shape) {
    throw model_error(source + ": tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
  }
  return t;
}

// Fills weights from a name map, given how to spell each name. The callers differ only in names.
struct name_scheme {
  std::string embed, final_norm, lm_head;
  std::string (*layer)(int l, const char* part);
};

std::string hf_layer(int l, const char* part) { return "model.layers." + std::to_string(l) + "." + part + ".weight"; }
std::string gguf_layer(int l, const char* part) { return "blk." + std::to_string(l) + "." + part + ".weight"; }

model_weights assemble(const tensor_map& ts, const model_config& c, const name_scheme& n, bool hf, const std::string& source) {
  const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ff = c.intermediate_size, v = c.vocab_size;
  model_weights w;
  // Tied checkpoints store the matrix once, under either name (tinystories-656K keeps only
  // lm_head.weight and maps embed_tokens to it in __metadata__).
  const bool has_embed = ts.contains(n.embed), has_head = ts.contains(n.lm_head);
  if (!has_embed && !has_head) throw model_error(source + ": missing tensor '" + n.embed + "'");
  w.embed = take(ts, has_embed ? n.embed : n.lm_head, {v, d}, source);
  w.lm_head = has_head ? take(ts, n.lm_head, {v, d}, source) : w.embed;
  if (!has_head && !c.tie_word_embeddings && hf) {
    throw model_error(source + ": missing tensor '" + n.lm_head + "' (tie_word_embeddings is false)");
  }
  w.final_norm = take(ts, n.final_norm, {d}, source);
  static const char* hf_parts[] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                   "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
                                   "mlp.down_proj"};
  static const char* gguf_parts[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                     "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
  const char** p = hf ? hf_parts : gguf_parts;
  for (int l = 0; l < c.n_layers; ++l) {
    layer_weights lw;
    lw.attn_norm = take(ts, n.layer(l, p[0]), {d}, source);
    lw.wq = take(ts, n.layer(l, p[1]), {q, d}, source);
    lw.wk = take(ts, n.layer(l, p[2]), {kv, d}, source);
    lw.wv = take(ts, n.layer(l, p[3]), {kv, d}, source);
    lw.wo = take(ts, n.layer(l, p[4]), {d, q}, source);
    lw.ffn_norm = take(ts, n.layer(l, p[5]), {d}, source);
    lw.w_gate = take(ts, n.layer(l, p[6]), {ff, d}, source);
    lw.w_up = take(ts, n.layer(l, p[7]), {ff, d}, source);
    lw.w_down = take(ts, n.layer(l, p[8]), {d, ff}, source);
    w.layers.push_back(std::move(lw));
  }
  return w;
}

// Quantized weights are dequantized to f32 for now; the quantization issue adds kernels that
// read the blocks directly (a tensor keeps its dtype, so only this function goes away).
// Tied embed/lm_head share one buffer.
void dequantize_used(model_weights& w, weight_storage& storage) {
  std::map<const void*, const float*> done;
  auto convert = [&](tensor& t) {
    if (t.type != dtype::q8_0 && t.type != dtype::q4_0) return;
    auto it = done.find(t.data);
    if (it == done.end()) {
      auto buf = std::make_unique<float[]>(static_cast<size_t>(t.numel()));
      for (int64_t r = 0; r < t.rows(); ++r) t.row_to_f32(r, buf.get() + r * t.cols());
      it = done.emplace(t.data, buf.get()).first;
      storage.buffers.push_back(std::move(buf));
    }
    t.type = dtype::f32;
    t.data = it->second;
  };
  convert(w.embed);
  convert(w.lm_head);
  convert(w.final_norm);
  for (auto& l : w.layers) {
    for (tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) convert(*t);
  }
}

// generation_config.json may name more end tokens than config.json (Llama 3 instruct stops on
// <|eot_id|> as well as <|end_of_text|>); generation stops on any of them, so merge the lists.
void merge_generation_eos(const std::filesystem::path& file, model_config& c) {
  simdjson::dom::parser parser;
  simdjson::padded_string text;
  simdjson::dom::element doc;
  if (simdjson::padded_string::load(file.string()).get(text) != simdjson::SUCCESS) return;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS) {
    spdlog::warn("{}: not valid JSON, ignored", file.string());
    return;
  }
  auto add = [&](simdjson::dom::element e) {
    int64_t id = 0;
    if (e.get_int64().get(id) == simdjson::SUCCESS && id >= 0 && id < c.vocab_size &&
        std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end()) {
      c.eos_token_ids.push_back(static_cast<int32_t>(id));
    }
  };
  simdjson::dom::element eos;
  if (doc["eos_token_id"].get(eos) != simdjson::SUCCESS) return;
  simdjson::dom::array list;
  if (eos.get_array().get(list) == simdjson::SUCCESS) {
    for (auto e : list) add(e);
  } else {
    add(eos);
  }
}

std::filesystem::path if_exists(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) ? p : std::filesystem::path{};
}

loaded_model load_hf_folder(const std::filesystem::path& dir, const crypto::key_source* key) {
  loaded_model m;
  m.source = dir;
  m.format = "safetensors";
  m.config = load_hf_config(dir / "config.json");
  auto storage = std::make_shared<weight_storage>();
  tensor_map ts;
  if (auto index = if_exists(dir / "model.safetensors.index.json"); !index.empty()) {
    read_safetensors_index(index, *storage, ts, key);
  } else if (auto single = if_exists(dir / "model.safetensors"); !single.empty()) {
    read_safetensors(single, *storage, ts, key);
  } else {
    throw model_error(dir.string() + ": no model.safetensors or model.safetensors.index.json");
  }
  name_scheme n{"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", hf_layer};
  m.weights = assemble(ts, m.config, n, /*hf=*/true, dir.string());
  m.storage = std::move(storage);
  m.tokenizer.tokenizer_json = if_exists(dir / "tokenizer.json");
  m.tokenizer.tokenizer_model = if_exists(dir / "tokenizer.model");
  m.tokenizer.tokenizer_config_json = if_exists(dir / "tokenizer_config.json");
  m.tokenizer.generation_config_json = if_exists(dir / "generation_config.json");
  if (!m.tokenizer.generation_config_json.empty()) merge_generation_eos(m.tokenizer.generation_config_json, m.config);
  return m;
}

loaded_model load_gguf(const std::filesystem::path& file, const crypto::key_source* key) {
  loaded_model m;
  m.source = file;
  m.format = "gguf";
  auto g = gguf_file::open(file, key);
  m.config = config_from_gguf(*g);
  auto storage = std::make_shared<weight_storage>();
  storage->gguf = g;
  tensor_map ts;
  for (const auto& info : g->tensors()) {
    tensor t;
    t.name = info.name;
    t.shape.assign(info.ne.rbegin(), info.ne.rend());  // GGML ne[0] is innermost: reverse
    const auto type = dtype_from_ggml(info.type);
    if (!type || info.data == nullptr) {
      // Kept without data: take() reports it only if the model uses this tensor.
      ts.emplace(info.name, std::move(t));
      continue;
    }
    t.type = *type;
    t.data = info.data;
    if ((t.type == dtype::q8_0 || t.type == dtype::q4_0) && t.cols() % 32 != 0) {
      throw model_error(file.string() + ": tensor '" + t.name + "' row length is not a multiple of 32");
    }
    ts.emplace(info.name, std::move(t));
  }
  name_scheme n{"token_embd.weight", "output_norm.weight", "output.weight", gguf_layer};
  m.weights = assemble(ts, m.config, n, /*hf=*/false, file.string());
  dequantize_used(m.weights, *storage);
  m.storage = std::move(storage);
  m.tokenizer.gguf = g;
  return m;
}

}  // namespace

loaded_model load_model(const std::filesystem::path& folder_or_file, const load_options& opts) {
  std::error_code ec;
  if (!std::filesystem::exists(folder_or_file, ec)) throw model_error(folder_or_file.string() + ": no such file or folder");
  loaded_model m;
  const crypto::key_source* key = opts.key ? &*opts.key : nullptr;
  if (std::filesystem::is_directory(folder_or_file, ec)) {
    m = load_hf_folder(folder_or_file, key);
  } else if (crypto::is_encrypted_checkpoint(folder_or_file.string())) {
    // The ciphertext hides the format's magic: go by the extension (mapped_file refuses it
    // without a key).
    const auto ext = folder_or_file.extension();
    if (ext == ".gguf") {
      m = load_gguf(folder_or_file, key);
    } else if (ext == ".bin") {
      m = load_llama2c(folder_or_file, opts.llama2c_tokenizer, key);
    } else if (ext == ".safetensors") {
      m = load_hf_folder(folder_or_file.parent_path(), key);
    } else {
      throw model_error(folder_or_file.string() + ": an encrypted checkpoint must be named *.safetensors, *.gguf or *.bin");
    }
  } else {
    // Sniff the format from the first bytes rather than trusting the extension.
    char magic[4] = {};
    if (FILE* f = std::fopen(folder_or_file.c_str(), "rb")) {
      const size_t got = std::fread(magic, 1, 4, f);
      std::fclose(f);
      if (got < 4) throw model_error(folder_or_file.string() + ": truncated model file");
    } else {
      throw model_error(folder_or_file.string() + ": cannot open");
    }
    if (std::memcmp(magic, "GGUF", 4) == 0) {
      m = load_gguf(folder_or_file, key);
    } else if (folder_or_file.extension() == ".bin") {
      m = load_llama2c(folder_or_file, opts.llama2c_tokenizer, key);
    } else if (folder_or_file.filename() == "config.json" || folder_or_file.extension() == ".safetensors" ||
               folder_or_file.filename() == "model.safetensors.index.json") {
      // A file inside a Hugging Face folder: the folder is the model.
      m = load_hf_folder(folder_or_file.parent_path(), key);
    } else {
      throw model_error(folder_or_file.string() + ": unrecognized model format (expected a Hugging Face folder, .gguf or llama2.c .bin)");
    }
  }
  spdlog::info("loaded {} model from {}: {} layers, hidden {}, vocab {}", m.format, m.source.string(),
               m.config.n_layers, m.config.hidden_size, m.config.vocab_size);
  return m;
}

}  // namespace moat::engine
