// load_tokenizer(): picks the format from the path, plus the small adapters (HF token configs,
// GGUF metadata, llama2.c's tokenizer export).
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <fstream>

#include "engine/gguf.h"
#include "engine/model_error.h"
#include "engine/tokenizer_bpe.h"
#include "engine/tokenizer_loaders.h"

namespace moat::engine {

namespace fs = std::filesystem;

namespace {

// A special token in tokenizer_config.json is a string or {"content": "..."}.
std::optional<std::string> token_text(simdjson::dom::element obj, std::string_view key) {
  simdjson::dom::element e;
  if (obj[key].get(e) != simdjson::SUCCESS) return std::nullopt;
  std::string_view s;
  if (e.get(s) == simdjson::SUCCESS) return std::string(s);
  if (e.is_object() && e["content"].get(s) == simdjson::SUCCESS) return std::string(s);
  return std::nullopt;
}

void read_token_fields(const fs::path& file, hf_token_config& cfg, bool overwrite) {
  if (!fs::exists(file)) return;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  const simdjson::padded_string json(read_json_text(file));
  if (auto err = parser.parse(json).get(root))
    throw tokenizer_error(file.string() + ": " + simdjson::error_message(err));
  bool b;
  if (root["add_bos_token"].get(b) == simdjson::SUCCESS) cfg.add_bos = b;
  if (root["add_eos_token"].get(b) == simdjson::SUCCESS) cfg.add_eos = b;
  for (auto [key, slot] : {std::pair{"bos_token", &cfg.bos}, {"eos_token", &cfg.eos}, {"unk_token", &cfg.unk},
                           {"pad_token", &cfg.pad}}) {
    if (slot->has_value() && !overwrite) continue;
    if (auto t = token_text(root, key)) *slot = std::move(t);
  }
}

token_id id_of(const vocabulary& v, const std::string& text) {
  for (size_t i = 0; i < v.pieces.size(); ++i)
    if (v.pieces[i] == text) return static_cast<token_id>(i);
  return -1;
}

int32_t read_i32(std::istream& in, const std::string& where) {
  int32_t x;
  if (!in.read(reinterpret_cast<char*>(&x), 4)) throw tokenizer_error(where + ": truncated");
  return x;
}

}  // namespace

std::string read_json_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw tokenizer_error(file.string() + ": cannot open");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out;
  out.reserve(text.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    const bool starts_number = (c >= '0' && c <= '9') && (i == 0 || !((text[i - 1] >= '0' && text[i - 1] <= '9') ||
                                                                       text[i - 1] == '.' || text[i - 1] == 'e' ||
                                                                       text[i - 1] == 'E' || text[i - 1] == '-' ||
                                                                       text[i - 1] == '+'));
    if (starts_number || (c == '-' && i + 1 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '9')) {
      size_t j = c == '-' ? i + 1 : i;
      while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
      out.append(text, i, j - i);
      const bool plain_int = j >= text.size() || (text[j] != '.' && text[j] != 'e' && text[j] != 'E');
      if (plain_int && j - i > 18) out += ".0";
      i = j - 1;
      continue;
    }
    out += c;
  }
  return out;
}

hf_token_config read_hf_token_config(const fs::path& folder) {
  hf_token_config cfg;
  read_token_fields(folder / "special_tokens_map.json", cfg, true);
  read_token_fields(folder / "tokenizer_config.json", cfg, true);
  return cfg;
}

std::vector<token_id> read_generation_eos_ids(const fs::path& folder) {
  const fs::path file = folder / "generation_config.json";
  std::vector<token_id> ids;
  if (!fs::exists(file)) return ids;
  simdjson::dom::parser parser;
  simdjson::dom::element root, e;
  const simdjson::padded_string json(read_json_text(file));
  if (parser.parse(json).get(root) || root["eos_token_id"].get(e)) return ids;
  int64_t one;
  simdjson::dom::array many;
  if (e.get(one) == simdjson::SUCCESS) ids.push_back(static_cast<token_id>(one));
  else if (e.get(many) == simdjson::SUCCESS)
    for (auto x : many)
      if (x.get(one) == simdjson::SUCCESS) ids.push_back(static_cast<token_id>(one));
  return ids;
}

void apply_hf_token_config(vocabulary& v, const hf_token_config& cfg) {
  if (cfg.bos) v.bos = id_of(v, *cfg.bos);
  if (cfg.eos) v.eos = id_of(v, *cfg.eos);
  if (cfg.unk && id_of(v, *cfg.unk) >= 0) v.unk = id_of(v, *cfg.unk);
  if (cfg.pad) v.pad = id_of(v, *cfg.pad);
  if (cfg.add_bos) v.add_bos = *cfg.add_bos;
  if (cfg.add_eos) v.add_eos = *cfg.add_eos;
}

void add_known_end_of_generation(tokenizer& tok) {
  // The end-of-turn pieces of the chat formats moat's built-in templates and popular models use.
  for (const char* piece : {"<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "<|eom_id|>",
                            "<end_of_turn>", "<|end|>"}) {
    auto id = tok.find(piece);
    if (id && tok.kind(*id) == token_kind::control) tok.add_end_of_generation(*id);
  }
}

std::unique_ptr<tokenizer> load_gguf_tokenizer(const gguf_file& g) {
  const std::string where = g.path().string();
  try {
    const std::string model = g.get_string("tokenizer.ggml.model");
    vocabulary v;
    auto tokens = g.get_strings("tokenizer.ggml.tokens");
    v.pieces.assign(tokens.begin(), tokens.end());
    if (g.find("tokenizer.ggml.token_type"))
      for (int64_t t : g.get_ints("tokenizer.ggml.token_type"))
        v.kinds.push_back(t >= 1 && t <= 6 ? static_cast<token_kind>(t) : token_kind::normal);
    if (g.find("tokenizer.ggml.scores"))
      for (double s : g.get_floats("tokenizer.ggml.scores")) v.scores.push_back(static_cast<float>(s));
    v.bos = static_cast<token_id>(g.get_int_or("tokenizer.ggml.bos_token_id").value_or(-1));
    v.eos = static_cast<token_id>(g.get_int_or("tokenizer.ggml.eos_token_id").value_or(-1));
    v.unk = static_cast<token_id>(g.get_int_or("tokenizer.ggml.unknown_token_id").value_or(-1));
    v.pad = static_cast<token_id>(g.get_int_or("tokenizer.ggml.padding_token_id").value_or(-1));
    for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
      if (auto id = g.get_int_or(key)) v.end_of_generation.push_back(static_cast<token_id>(*id));
    std::unique_ptr<tokenizer> tok;
    if (model == "llama") {
      v.encoding = piece_encoding::sentencepiece;
      v.add_bos = g.get_int_or("tokenizer.ggml.add_bos_token").value_or(1) != 0;
      v.add_eos = g.get_int_or("tokenizer.ggml.add_eos_token").value_or(0) != 0;
      if (v.unk < 0) v.unk = 0;
      v.finish();
      spm_options o;
      const bool prefix = g.get_int_or("tokenizer.ggml.add_space_prefix").value_or(1) != 0;
      o.prefix = prefix ? prefix_rule::after_special : prefix_rule::never;
      o.strip_leading_space = prefix;
      tok = std::make_unique<spm_tokenizer>(std::move(v), o);
    } else if (model == "gpt2") {
      v.encoding = piece_encoding::byte_level;
      v.add_bos = g.get_int_or("tokenizer.ggml.add_bos_token").value_or(0) != 0;
      v.add_eos = g.get_int_or("tokenizer.ggml.add_eos_token").value_or(0) != 0;
      std::vector<std::pair<std::string, std::string>> merges;
      for (const std::string& m : g.get_strings("tokenizer.ggml.merges")) {
        const size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) throw tokenizer_error(where + ": bad merge \"" + m + "\"");
        merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
      }
      v.finish();
      bpe_options o;
      o.byte_level = true;
      const std::string pre = g.get_string_or("tokenizer.ggml.pre").value_or("gpt-2");
      if (pre != "gpt-2" && pre != "default" && pre != "llama-bpe" && pre != "llama3" && pre != "smollm")
        spdlog::warn("tokenizer {}: tokenizer.ggml.pre \"{}\" is not known here; using the GPT-2 pattern", where, pre);
      o.pretokenizer = pre == "llama-bpe" || pre == "llama3" ? pretokenizer_kind::llama3 : pretokenizer_kind::gpt2;
      o.digits_individual = pre == "smollm";
      o.name = "gguf-gpt2";
      tok = std::make_unique<bpe_tokenizer>(std::move(v), merges, o);
    } else {
      throw tokenizer_error(where + ": tokenizer.ggml.model \"" + model + "\" is not supported (llama, gpt2)");
    }
    add_known_end_of_generation(*tok);
    return tok;
  } catch (const model_error& e) {
    throw tokenizer_error(e.what());
  }
}

std::unique_ptr<tokenizer> load_llama2c_tokenizer(const fs::path& file, int32_t vocab_size) {
  const std::string where = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in) throw tokenizer_error(where + ": cannot open");
  const int32_t max_len = read_i32(in, where);
  if (max_len <= 0 || max_len > 4096) throw tokenizer_error(where + ": not a llama2.c tokenizer (bad max_token_length)");
  vocabulary v;
  v.encoding = piece_encoding::raw;
  for (int32_t i = 0; vocab_size == 0 || i < vocab_size; ++i) {
    float score;
    if (!in.read(reinterpret_cast<char*>(&score), 4)) {
      if (vocab_size == 0 && in.eof()) break;
      throw tokenizer_error(where + ": truncated at token " + std::to_string(i));
    }
    const int32_t len = read_i32(in, where);
    if (len < 0 || len > max_len) throw tokenizer_error(where + ": token " + std::to_string(i) + " has a bad length");
    std::string piece(static_cast<size_t>(len), '\0');
    if (!in.read(piece.data(), len)) throw tokenizer_error(where + ": truncated at token " + std::to_string(i));
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
  }
  v.kinds.assign(v.pieces.size(), token_kind::normal);
  if (v.pieces.size() < 3) throw tokenizer_error(where + ": fewer than 3 tokens");
  // llama2.c's convention: 0 <unk>, 1 BOS ("\n<s>\n"), 2 EOS ("\n</s>\n"), then <0xNN> bytes.
  v.kinds[0] = token_kind::unknown;
  v.kinds[1] = v.kinds[2] = token_kind::control;
  for (size_t i = 3; i < v.pieces.size(); ++i)
    if (v.pieces[i].size() == 6 && v.pieces[i].starts_with("<0x") && v.pieces[i][5] == '>') v.kinds[i] = token_kind::byte;
  v.unk = 0, v.bos = 1, v.eos = 2, v.add_bos = true;
  v.finish();
  spm_options o;
  o.replace_space = false;
  o.prefix = prefix_rule::at_start;
  o.name = "llama2c";
  return std::make_unique<spm_tokenizer>(std::move(v), o);
}

std::unique_ptr<tokenizer> load_tokenizer(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const hf_token_config cfg = read_hf_token_config(path);
    std::unique_ptr<tokenizer> tok;
    if (fs::exists(path / "tokenizer.json")) tok = load_hf_tokenizer_json(path / "tokenizer.json", cfg);
    else if (fs::exists(path / "tokenizer.model")) tok = load_sentencepiece_model(path / "tokenizer.model", cfg);
    else if (fs::exists(path / "tokenizer.bin")) tok = load_llama2c_tokenizer(path / "tokenizer.bin");
    else throw tokenizer_error(path.string() + ": no tokenizer.json, tokenizer.model or tokenizer.bin");
    for (token_id id : read_generation_eos_ids(path)) tok->add_end_of_generation(id);
    add_known_end_of_generation(*tok);
    return tok;
  }
  if (!fs::exists(path, ec)) throw tokenizer_error(path.string() + ": no such file or folder");
  const std::string ext = path.extension().string();
  if (ext == ".gguf") {
    std::shared_ptr<const gguf_file> g;
    try {
      g = gguf_file::open(path);
    } catch (const model_error& e) {
      throw tokenizer_error(e.what());
    }
    return load_gguf_tokenizer(*g);
  }
  if (ext == ".model") return load_sentencepiece_model(path, {});
  if (ext == ".json") return load_hf_tokenizer_json(path, read_hf_token_config(path.parent_path()));
  if (ext == ".bin") return load_llama2c_tokenizer(path);
  throw tokenizer_error(path.string() + ": unknown tokenizer format (want a model folder, .gguf, .model, .json or .bin)");
}

}  // namespace moat::engine
