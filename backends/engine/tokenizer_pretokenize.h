// tokenizer_pretokenize.h — splitting text into words before BPE, as the reference regexes do.
//
//   std::vector<std::string_view> words;
//   pretokenize(pretokenizer_kind::llama3, "Hello  world!!", words);   // "Hello", " ", " world", "!!"
//
// The GPT-2 and Llama-3 patterns are matched by hand-written scanners (re2 has no lookahead, and
// `\s+(?!\S)` needs it), alternative by alternative in the regex's order, on code points.
#pragma once

#include <string_view>
#include <vector>

namespace moat::engine {

enum class pretokenizer_kind {
  none,    // the whole fragment is one word
  gpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  llama3,  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
};

// Where a SentencePiece-style "▁" prefix is added to a text fragment.
enum class prefix_rule {
  never,
  at_start,       // only the fragment that starts the input (HF, sentencepiece)
  after_special,  // the start and after every special token (llama.cpp)
  always,         // every fragment (HF Metaspace prepend_scheme "always")
};

// Appends the words of `text` (views into it, covering it exactly, in order).
void pretokenize(pretokenizer_kind kind, std::string_view text, std::vector<std::string_view>& words);
// HF Digits(individual_digits=true): every ASCII/Unicode digit alone, the runs between kept whole.
void split_digits(std::string_view text, std::vector<std::string_view>& parts);

}  // namespace moat::engine
