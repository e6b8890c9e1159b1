#include "engine/loader.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include <cstring>
#include <map>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "engine/llama2c.h"
#include "engine/model_error.h"
#include "engine/quant/bnb_checkpoint.h"
#include "engine/quant/quantize_rows.h"
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
  if (t.type == dtype::u8 || t.type == dtype::i8) {
    throw model_error(source + ": tensor '" + name + "' is stored as " + std::string(dtype_name(t.type)) +
                      ", which is a weight only as part of a bitsandbytes checkpoint (its quant_state or SCB "
                      "companion is missing)");
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

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Bytes a safetensors tensor holds (a scalar, shape [], is one element).
size_t stored_bytes(const tensor& t) {
  size_t n = 1;
  for (int64_t d : t.shape) n *= static_cast<size_t>(d);
  return n * dtype_row_bytes(t.type, 1);
}

// bitsandbytes 4-bit checkpoints (transformers' load_in_4bit, see engine/quant/bnb_checkpoint.h):
// each NF4 weight W becomes one dtype::nf4 tensor of its original shape whose data are the
// packed codes in the mapping (not copied) and whose scales are the fp32 absmax rebuilt from
// the double-quantized statistics (owned by storage). The companion tensors stay in `ts`, unused.
void adopt_bnb_nf4(tensor_map& ts, weight_storage& storage, const std::string& source) {
  bool any = false;
  for (const auto& [name, t] : ts) {
    if (ends_with(name, ".quant_state.bitsandbytes__fp4")) {
      throw model_error(source + ": tensor '" + name + "': bitsandbytes FP4 is not supported (NF4 is)");
    }
    any = any || ends_with(name, ".quant_state.bitsandbytes__nf4");
  }
  if (!any) return;
  std::map<std::string, quant::raw_tensor> raw;
  for (const auto& [name, t] : ts) {
    raw.emplace(name, quant::raw_tensor{std::string(dtype_name(t.type)), t.shape, static_cast<const uint8_t*>(t.data),
                                        stored_bytes(t)});
  }
  std::map<std::string, quant::bnb_nf4_weight> weights;
  try {
    weights = quant::collect_bnb_nf4(raw);
  } catch (const std::invalid_argument& e) {
    throw model_error(source + ": " + e.what());
  }
  for (auto& [name, w] : weights) {
    auto bad = [&](const std::string& why) { return model_error(source + ": bitsandbytes weight '" + name + "': " + why); };
    // The engine's nf4 dtype and the kernels use bitsandbytes' default blocks of 64 and read a
    // row at element r * cols, which must fall on a byte.
    if (w.state.blocksize != 64) throw bad("blocksize " + std::to_string(w.state.blocksize) + " (moat reads 64)");
    if (w.state.shape.size() != 2) throw bad("quant_state shape is not 2-D");
    if (w.state.shape[1] % 2 != 0) throw bad("odd row length " + std::to_string(w.state.shape[1]));
    tensor& t = ts.at(name);
    t.type = dtype::nf4;
    t.shape = {static_cast<int64_t>(w.state.shape[0]), static_cast<int64_t>(w.state.shape[1])};
    t.data = w.packed;
    t.scales = storage.scales.emplace_back(std::move(w.absmax)).data();
  }
  spdlog::debug("{}: {} bitsandbytes NF4 weights read as they are", source, weights.size());
}

// bitsandbytes 8-bit checkpoints (LLM.int8, transformers' load_in_8bit): `<module>.weight` I8
// [rows, cols] with `<module>.SCB` F32 [rows], each row's absmax. That is the engine's int8 per
// output channel with scale = SCB / 127: the int8 rows are used as they are, only the scales
// are computed (owned by storage).
void adopt_bnb_int8(tensor_map& ts, weight_storage& storage, const std::string& source) {
  for (auto& [name, t] : ts) {
    if (t.type != dtype::i8 || !ends_with(name, ".weight")) continue;
    const std::string module = name.substr(0, name.size() - std::string_view(".weight").size());
    auto bad = [&](const std::string& why) { return model_error(source + ": bitsandbytes int8 weight '" + name + "': " + why); };
    auto scb = ts.find(module + ".SCB");
    if (scb == ts.end()) continue;  // take() names the missing companion if the model uses it
    if (t.shape.size() != 2) throw bad("is not 2-D");
    if (scb->second.type != dtype::f32 || scb->second.shape != std::vector<int64_t>{t.shape[0]}) {
      throw bad("SCB must be F32 [" + std::to_string(t.shape[0]) + "]");
    }
    // weight_format 0 is "row"; the col32/turing/ampere tile layouts are GPU-only and not saved
    // by current bitsandbytes, so refuse rather than misread them.
    if (auto wf = ts.find(module + ".weight_format"); wf != ts.end() && wf->second.type == dtype::u8 &&
                                                     stored_bytes(wf->second) == 1 &&
                                                     *static_cast<const uint8_t*>(wf->second.data) != 0) {
      throw bad("weight_format is not row-major");
    }
    // SCB need not be 4-byte aligned in the mapping: copy it out before reading floats.
    std::vector<float> scales(static_cast<size_t>(t.shape[0]));
    std::memcpy(scales.data(), scb->second.data, scales.size() * sizeof(float));
    for (float& s : scales) s = quant::bnb_int8_scale(s);
    t.type = dtype::int8;
    t.scales = storage.scales.emplace_back(std::move(scales)).data();
  }
}

// config.json's quantization_config: only bitsandbytes checkpoints hold weights moat reads
// (GPTQ, AWQ and the like pack int4 into I32 tensors with other layouts); say so by name.
void check_quantization_config(const std::filesystem::path& config_json) {
  simdjson::dom::parser parser;
  simdjson::padded_string text;
  simdjson::dom::element doc;
  if (simdjson::padded_string::load(config_json.string()).get(text) != simdjson::SUCCESS ||
      parser.parse(text).get(doc) != simdjson::SUCCESS) {
    return;  // load_hf_config has already reported an unreadable file
  }
  std::string_view method;
  if (doc["quantization_config"]["quant_method"].get_string().get(method) != simdjson::SUCCESS) return;
  if (method != "bitsandbytes") {
    throw model_error(config_json.string() + ": quantization_config.quant_method '" + std::string(method) +
                      "' is not supported (bitsandbytes NF4 and int8 checkpoints are)");
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
  check_quantization_config(dir / "config.json");
  adopt_bnb_nf4(ts, *storage, dir.string());
  adopt_bnb_int8(ts, *storage, dir.string());
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
  // Q8_0 / Q4_0 weights stay as they are in the mapping: the CPU matmul reads the blocks
  // (cpu/quant/matmul.h) and the token lookup dequantizes one embedding row at a time.
  m.weights = assemble(ts, m.config, n, /*hf=*/false, file.string());
  m.storage = std::move(storage);
  m.tokenizer.gguf = g;
  return m;
}

bool overlaps(const tensor& a, const void* p, size_t n) {
  const auto x = reinterpret_cast<uintptr_t>(a.data), y = reinterpret_cast<uintptr_t>(p);
  return x < y + n && y < x + a.bytes();
}

// load_options::quant. The tensors quantized are the ones cpu::model_view would quantize (so
// it finds them already in the target format and keeps them), the values are bit for bit the
// ones its serial loop makes (quantize_rows), and each source's pages go back once it is done:
// quantize-on-load then leaves the quantized copy resident, not the f16 source as well.
void quantize_linear_weights(loaded_model& m, dtype target, unsigned threads, const load_options& opts) {
  const quant::row_format f = row_format_of(target);
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  weight_storage& st = *m.storage;
  model_weights& w = m.weights;
  std::vector<tensor*> linear;
  for (auto& l : w.layers) {
    for (tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      if (t->type != target) linear.push_back(t);
    }
  }
  // A tied lm_head is the embedding: kept as stored (the token lookup reads it too).
  if (w.lm_head.data != w.embed.data && w.lm_head.type != target) linear.push_back(&w.lm_head);

  auto map_of = [&](const tensor& t) -> mapped_file* {
    for (auto& map : st.maps) {
      if (map->contains(t.data, t.bytes())) return map.get();
    }
    return nullptr;  // a GGUF mapping (gguf_file's own) or an aligned copy: kept as it is
  };
  std::vector<tensor> sources;  // the quantized weights' sources in a mapping, as they were
  size_t done = 0;
  for (tensor* t : linear) {
    const tensor src = *t;
    const auto rows = static_cast<size_t>(src.rows()), cols = static_cast<size_t>(src.cols());
    if (target == dtype::nf4 && cols % 2 != 0) throw model_error(src.name + ": nf4 needs an even row length");
    auto data = std::make_unique_for_overwrite<uint8_t[]>(quant::quantized_bytes(f, rows, cols));
    std::vector<float> scales(quant::quantized_scales(f, rows, cols));
    quant::quantize_rows(
        f, rows, cols,
        [&src, cols](size_t r0, size_t r1, float* out) {
          for (size_t r = r0; r < r1; ++r) src.row_to_f32(static_cast<int64_t>(r), out + (r - r0) * cols);
        },
        data.get(), scales.data(), threads);
    t->type = target;
    t->data = st.quantized.emplace_back(std::move(data)).get();
    t->scales = st.scales.emplace_back(std::move(scales)).data();
    if (mapped_file* map = map_of(src); map != nullptr) {
      // A file's pages can go at once (re-read if touched again), which keeps the peak low; a
      // decrypted buffer's only once it is known that no weight still in use shares them.
      if (!map->decrypted()) map->release(src.data, src.bytes());
      sources.push_back(src);
    }
    if (opts.progress) opts.progress(++done, linear.size());
  }

  std::vector<tensor*> kept = {&w.embed, &w.final_norm, &w.lm_head};
  for (auto& l : w.layers) {
    for (tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      kept.push_back(t);
    }
  }
  // Small weights still in a mapping (the norms) get a copy of their own. The page cache may
  // hold a file in large folios (up to 2 MiB), and touching one byte of a folio maps all of it:
  // reading a 4 KiB norm would map back up to 2 MiB of released neighbours. It also lets a
  // shard of norms and quantized weights be dropped whole.
  constexpr size_t small_bytes = size_t{64} << 10;  // a norm of 16k f32 values
  for (tensor* t : kept) {
    if (t->bytes() > small_bytes || map_of(*t) == nullptr) continue;
    auto copy = std::make_unique_for_overwrite<float[]>((t->bytes() + sizeof(float) - 1) / sizeof(float));
    std::memcpy(copy.get(), t->data, t->bytes());
    t->data = st.buffers.emplace_back(std::move(copy)).get();
  }
  // A mapping no weight points into any more is dropped whole: unmapped, or for a decrypted
  // buffer wiped and freed.
  std::erase_if(st.maps, [&](const std::shared_ptr<mapped_file>& map) {
    return std::none_of(kept.begin(), kept.end(), [&](const tensor* t) { return map->contains(t->data, t->bytes()); });
  });
  // The sources again, now that all are read: a file page mapped back meanwhile (the edge of a
  // large folio that a neighbour's quantization touched) goes too; a decrypted buffer's pages
  // go unless a weight still in use lies on them.
  for (const tensor& src : sources) {
    mapped_file* map = map_of(src);
    if (map == nullptr) continue;  // dropped above
    const bool shared = std::any_of(kept.begin(), kept.end(), [&](const tensor* t) { return overlaps(*t, src.data, src.bytes()); });
    if (!shared) map->release(src.data, src.bytes());
  }
  size_t released = 0;
  for (const auto& map : st.maps) released += map->released_bytes();
  spdlog::debug("{}: {} weights quantized to {} on {} threads; {:.1f} MiB of source pages released", m.source.string(),
                linear.size(), dtype_name(target), threads, static_cast<double>(released) / (1 << 20));
}

}  // namespace

quant::row_format row_format_of(dtype t) {
  switch (t) {
    case dtype::int8:
      return quant::row_format::int8;
    case dtype::int4:
      return quant::row_format::int4_g64;
    case dtype::nf4:
      return quant::row_format::nf4;
    default:
      throw model_error(std::string("quant: cannot quantize on load to ") +
                        std::string(dtype_name(t)));
  }
}

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
  if (opts.quant != dtype::f32) quantize_linear_weights(m, opts.quant, opts.threads, opts);
  spdlog::info("loaded {} model from {}: {} layers, hidden {}, vocab {}", m.format, m.source.string(),
               m.config.n_layers, m.config.hidden_size, m.config.vocab_size);
  return m;
}

}  // namespace moat::engine
