// tokenizer_bpe.h — the merge-based tokenizers written here (no library): HF BPE by merge rank
// (byte-level GPT-2 / Llama-3 / SmolLM, and SentencePiece-style with byte fallback) and
// SentencePiece-style BPE by piece score (llama.cpp's SPM tokenizer, llama2.c's encoder).
//
//   vocabulary v = ...;  v.finish();
//   bpe_options o;  o.byte_level = true;  o.pretokenizer = pretokenizer_kind::llama3;
//   auto tok = std::make_unique<bpe_tokenizer>(std::move(v), merges, o);
//   auto ids = tok->encode("Hello world");
//
// Loaders (tokenizer_load_*.cpp) fill the vocabulary and options from tokenizer.json, GGUF
// metadata or llama2.c files, so the GGUF path is a thin adapter over plain vectors.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/tokenizer.h"
#include "engine/tokenizer_pretokenize.h"

namespace moat::engine {

struct bpe_options {
  bool byte_level = false;            // map bytes through GPT-2's byte-to-unicode table first
  pretokenizer_kind pretokenizer = pretokenizer_kind::none;
  bool digits_individual = false;     // HF Digits(individual_digits=true) before the regex
  // HF normalizers Prepend("▁") and Replace(" ", "▁"), run on each segment between raw specials.
  bool normalizer_prepend = false;
  bool normalizer_replace_space = false;
  // HF Metaspace pre-tokenizer: spaces as "▁", a "▁" prefix where `prefix` says, optional split.
  bool metaspace = false;
  prefix_rule prefix = prefix_rule::never;
  bool metaspace_split = false;       // Metaspace(split=true): a new word at every "▁"
  bool byte_fallback = false;         // unknown characters -> <0xNN> pieces
  bool fuse_unk = false;              // consecutive unknowns -> one <unk>
  bool ignore_merges = false;         // a word found whole in the vocabulary is taken as is
  bool strip_leading_space = false;   // decoder drops one leading space
  std::string name = "bpe";
};

// HF BPE: merges applied lowest rank first, leftmost first on ties.
class bpe_tokenizer final : public tokenizer {
 public:
  // merges: pairs of pieces, rank = index. Pairs naming unknown pieces are ignored (as HF does
  // for an inconsistent file it would refuse; we only need those that can apply).
  bpe_tokenizer(vocabulary vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                bpe_options options);
  std::string_view name() const override { return options_.name; }

 protected:
  void encode_plain(std::string_view text, fragment_position pos, std::vector<token_id>& out) const override;
  std::string normalize(std::string_view segment) const override;

 private:
  void encode_word(std::string_view word, std::vector<token_id>& out) const;
  void emit_unknown(std::string_view piece, std::vector<token_id>& out) const;

  bpe_options options_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, token_id>> merges_;
};

struct spm_options {
  bool replace_space = true;          // " " -> "▁" (llama.cpp); false for llama2.c (raw spaces)
  prefix_rule prefix = prefix_rule::after_special;  // where the dummy-prefix space goes
  bool strip_leading_space = true;
  std::string name = "gguf-llama";
};

// Score-based SentencePiece BPE: repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring piece (leftmost on ties); leftovers fall back to <0xNN> byte pieces, then <unk>.
class spm_tokenizer final : public tokenizer {
 public:
  spm_tokenizer(vocabulary vocab, spm_options options);
  std::string_view name() const override { return options_.name; }

 protected:
  void encode_plain(std::string_view text, fragment_position pos, std::vector<token_id>& out) const override;

 private:
  spm_options options_;
};

}  // namespace moat::engine
