// tokenizer.json (Hugging Face `tokenizers`): BPE models only, byte-level (GPT-2, Llama 3, SmolLM)
// or SentencePiece-style (Llama 2, TinyLlama, TinyStories: "▁" normalizer or Metaspace, byte fallback).
#include <simdjson.h>

#include <spdlog/spdlog.h>

#include "engine/tokenizer_bpe.h"
#include "engine/tokenizer_loaders.h"

namespace moat::engine {

namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

std::string_view type_of(element e) {
  std::string_view t;
  if (e.is_object() && e["type"].get(t) == simdjson::SUCCESS) return t;
  return {};
}

bool get_bool(element e, std::string_view key, bool fallback) {
  bool b;
  return e.is_object() && e[key].get(b) == simdjson::SUCCESS ? b : fallback;
}

std::optional<element> field(element e, std::string_view key) {
  element c;
  if (!e.is_object() || e[key].get(c) != simdjson::SUCCESS || c.is_null()) return std::nullopt;
  return c;
}

// Visits e, or each member of a {"type":"Sequence"} list (recursively).
template <typename Fn>
void for_each_step(std::optional<element> maybe, std::string_view list_key, Fn fn) {
  if (!maybe || !maybe->is_object()) return;
  element e = *maybe;
  if (type_of(e) == "Sequence") {
    array items;
    if (e[list_key].get(items) == simdjson::SUCCESS)
      for (element item : items) for_each_step(std::optional<element>(item), list_key, fn);
    return;
  }
  fn(e);
}

prefix_rule rule_from_scheme(std::string_view scheme, bool add_prefix_space) {
  if (scheme == "first") return prefix_rule::at_start;
  if (scheme == "never") return prefix_rule::never;
  if (scheme == "always") return prefix_rule::always;
  return add_prefix_space ? prefix_rule::always : prefix_rule::never;  // older files: add_prefix_space
}

pretokenizer_kind kind_from_regex(std::string_view pattern, const std::string& file) {
  if (pattern.find("\\p{N}{1,3}") != std::string_view::npos) return pretokenizer_kind::llama3;
  if (pattern.find("'s|'t|'re|'ve|'m|'ll|'d") != std::string_view::npos) return pretokenizer_kind::gpt2;
  throw tokenizer_error(file + ": unsupported pre-tokenizer pattern (supported: GPT-2, Llama 3)");
}

}  // namespace

std::unique_ptr<tokenizer> load_hf_tokenizer_json(const std::filesystem::path& file, const hf_token_config& cfg) {
  const std::string where = file.string();
  simdjson::dom::parser parser;
  element root;
  const simdjson::padded_string json(read_json_text(file));
  if (auto err = parser.parse(json).get(root)) throw tokenizer_error(where + ": " + simdjson::error_message(err));
  element model;
  std::string_view model_type;
  if (root["model"].get(model) != simdjson::SUCCESS) throw tokenizer_error(where + ": no \"model\"");
  if (model["type"].get(model_type) != simdjson::SUCCESS) model_type = "BPE";  // old files omit it
  if (model_type != "BPE") throw tokenizer_error(where + ": tokenizer model \"" + std::string(model_type) + "\" is not supported (BPE only)");

  vocabulary v;
  object vocab_obj;
  if (model["vocab"].get(vocab_obj) != simdjson::SUCCESS) throw tokenizer_error(where + ": model.vocab missing");
  auto put = [&](int64_t id, std::string_view piece, token_kind kind) {
    if (id < 0 || id > 10'000'000) throw tokenizer_error(where + ": token id out of range");
    if (static_cast<size_t>(id) >= v.pieces.size()) {
      v.pieces.resize(id + 1);
      v.kinds.resize(id + 1, token_kind::unused);
    }
    v.pieces[id] = std::string(piece);
    v.kinds[id] = kind;
  };
  for (auto [piece, id_el] : vocab_obj) {
    int64_t id;
    if (id_el.get(id) != simdjson::SUCCESS) throw tokenizer_error(where + ": vocab id not an integer");
    put(id, piece, token_kind::normal);
  }
  array added;
  if (root["added_tokens"].get(added) == simdjson::SUCCESS) {
    for (element t : added) {
      int64_t id;
      std::string_view content;
      if (t["id"].get(id) || t["content"].get(content)) throw tokenizer_error(where + ": bad added_tokens entry");
      put(id, content, get_bool(t, "special", false) ? token_kind::control : token_kind::user_defined);
      v.specials.push_back(static_cast<token_id>(id));
      if (get_bool(t, "normalized", false)) v.normalized_specials.push_back(static_cast<token_id>(id));
    }
  }

  bpe_options o;
  o.byte_fallback = get_bool(model, "byte_fallback", false);
  o.fuse_unk = get_bool(model, "fuse_unk", false);
  o.ignore_merges = get_bool(model, "ignore_merges", false);
  std::string_view unk;
  if (model["unk_token"].get(unk) == simdjson::SUCCESS) {
    for (size_t i = 0; i < v.pieces.size(); ++i)
      if (v.pieces[i] == unk) v.unk = static_cast<token_id>(i);
  }
  if (o.byte_fallback)
    for (size_t i = 0; i < v.pieces.size(); ++i)
      if (v.kinds[i] == token_kind::normal && v.pieces[i].size() == 6 && v.pieces[i].starts_with("<0x"))
        v.kinds[i] = token_kind::byte;

  bool byte_level = false;
  for_each_step(field(root, "normalizer"), "normalizers", [&](element n) {
    const auto t = type_of(n);
    if (t == "Prepend") o.normalizer_prepend = true;  // the only Prepend in use: "▁"
    else if (t == "Replace") o.normalizer_replace_space = true;  // the only Replace in use: " " -> "▁"
    else if (!t.empty() && t != "NFC" && t != "NFKC")
      spdlog::warn("tokenizer {}: normalizer {} is ignored", where, t);
  });
  for_each_step(field(root, "pre_tokenizer"), "pretokenizers", [&](element p) {
    const auto t = type_of(p);
    if (t == "ByteLevel") {
      byte_level = true;
      if (get_bool(p, "use_regex", true)) o.pretokenizer = pretokenizer_kind::gpt2;
      if (get_bool(p, "add_prefix_space", false))
        spdlog::warn("tokenizer {}: ByteLevel add_prefix_space is ignored", where);
    } else if (t == "Split") {
      std::string_view pattern;
      if (p["pattern"]["Regex"].get(pattern) != simdjson::SUCCESS)
        throw tokenizer_error(where + ": Split pre-tokenizer without a Regex pattern");
      o.pretokenizer = kind_from_regex(pattern, where);
    } else if (t == "Digits") {
      o.digits_individual = get_bool(p, "individual_digits", false);
    } else if (t == "Metaspace") {
      std::string_view scheme;
      if (p["prepend_scheme"].get(scheme) != simdjson::SUCCESS) scheme = "";
      o.prefix = rule_from_scheme(scheme, get_bool(p, "add_prefix_space", true));
      o.metaspace = true;
      o.metaspace_split = get_bool(p, "split", true);
    } else if (!t.empty()) {
      throw tokenizer_error(where + ": pre-tokenizer " + std::string(t) + " is not supported");
    }
  });
  for_each_step(field(root, "decoder"), "decoders", [&](element d) {
    const auto t = type_of(d);
    if (t == "ByteLevel") byte_level = true;
    int64_t start = 0;
    if (t == "Strip" && d["start"].get(start) == simdjson::SUCCESS && start > 0) o.strip_leading_space = true;
    if (t == "Metaspace") o.strip_leading_space = true;
  });
  o.byte_level = byte_level;
  v.encoding = byte_level ? piece_encoding::byte_level : piece_encoding::sentencepiece;
  o.name = byte_level ? "bpe" : "spm-bpe";

  // BOS/EOS from the post-processor template ("<s> $A"), then tokenizer_config.json overrides.
  std::vector<std::string> template_specials;
  bool special_first = false, special_last = false;
  for_each_step(field(root, "post_processor"), "processors", [&](element p) {
    array single;
    if (type_of(p) != "TemplateProcessing" || p["single"].get(single) != simdjson::SUCCESS) return;
    size_t i = 0, n = single.size();
    for (element step : single) {
      std::string_view id;
      if (step["SpecialToken"]["id"].get(id) == simdjson::SUCCESS) {
        if (i == 0) special_first = true, template_specials.insert(template_specials.begin(), std::string(id));
        else if (i + 1 == n) special_last = true, template_specials.emplace_back(id);
      }
      ++i;
    }
  });
  auto id_of = [&](const std::string& s) -> token_id {
    for (size_t i = 0; i < v.pieces.size(); ++i)
      if (v.pieces[i] == s) return static_cast<token_id>(i);
    return -1;
  };
  if (special_first) v.bos = id_of(template_specials.front()), v.add_bos = true;
  if (special_last) v.eos = id_of(template_specials.back()), v.add_eos = true;
  apply_hf_token_config(v, cfg);

  std::vector<std::pair<std::string, std::string>> merges;
  array merges_arr;
  if (model["merges"].get(merges_arr) == simdjson::SUCCESS) {
    merges.reserve(merges_arr.size());
    for (element m : merges_arr) {
      std::string_view s;
      array pair;
      if (m.get(s) == simdjson::SUCCESS) {
        const size_t sp = s.find(' ', 1);  // a piece never starts with a space in this format
        if (sp == std::string_view::npos) throw tokenizer_error(where + ": bad merge \"" + std::string(s) + "\"");
        merges.emplace_back(std::string(s.substr(0, sp)), std::string(s.substr(sp + 1)));
      } else if (m.get(pair) == simdjson::SUCCESS && pair.size() == 2) {
        std::string_view a, b;
        if (pair.at(0).get(a) || pair.at(1).get(b)) throw tokenizer_error(where + ": bad merge pair");
        merges.emplace_back(std::string(a), std::string(b));
      } else {
        throw tokenizer_error(where + ": bad merges entry");
      }
    }
  }
  for (size_t i = 0; i < v.pieces.size(); ++i)
    if (v.kinds[i] == token_kind::unused && v.pieces[i].empty()) v.pieces[i] = "<unused" + std::to_string(i) + ">";
  v.finish();
  return std::make_unique<bpe_tokenizer>(std::move(v), merges, std::move(o));
}

}  // namespace moat::engine
