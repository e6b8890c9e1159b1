// tokenizer_loaders.h — the per-format builders behind load_tokenizer() (internal to the engine).
//
//   hf_token_config cfg = read_hf_token_config(folder);          // tokenizer_config.json, if any
//   auto tok = load_hf_tokenizer_json(folder / "tokenizer.json", cfg);
//
// Each builder fills a `vocabulary` from its format and hands it to one of the algorithms
// (bpe_tokenizer, spm_tokenizer, sentencepiece_tokenizer). All throw tokenizer_error naming the file.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/tokenizer.h"

namespace moat::engine {

class gguf_file;

// What tokenizer_config.json (and special_tokens_map.json) say about special tokens.
struct hf_token_config {
  std::optional<bool> add_bos, add_eos;
  std::optional<std::string> bos, eos, unk, pad;  // token texts
};
hf_token_config read_hf_token_config(const std::filesystem::path& folder);
// generation_config.json's eos_token_id (an int or a list); empty when absent.
std::vector<token_id> read_generation_eos_ids(const std::filesystem::path& folder);

std::unique_ptr<tokenizer> load_hf_tokenizer_json(const std::filesystem::path& file, const hf_token_config& cfg);
std::unique_ptr<tokenizer> load_sentencepiece_model(const std::filesystem::path& file, const hf_token_config& cfg);
std::unique_ptr<tokenizer> load_gguf_tokenizer(const gguf_file& gguf);
// llama2.c's tokenizer export; vocab_size 0 reads entries until the end of the file.
std::unique_ptr<tokenizer> load_llama2c_tokenizer(const std::filesystem::path& file, int32_t vocab_size = 0);

// Reads a JSON file for simdjson, turning integers too large for 64 bits into floats (simdjson
// refuses them; tokenizer_config.json files carry "model_max_length": 1000000000000000019884624838656).
// Throws tokenizer_error when the file cannot be read.
std::string read_json_text(const std::filesystem::path& file);

// Applies the token texts of cfg to v (ids looked up by text) before v.finish().
void apply_hf_token_config(vocabulary& v, const hf_token_config& cfg);
// Adds well-known end-of-turn pieces present in the vocabulary (<|eot_id|>, <|im_end|>, ...).
void add_known_end_of_generation(tokenizer& tok);

}  // namespace moat::engine
