// The echo backend's notion of text: words are maximal runs of non-whitespace and count as
// tokens; a "piece" is one word with the whitespace after it, so concatenating the pieces gives
// the text back. Also the limits (max_tokens in words, stop strings), UTF-8-safe chunking and
// the deterministic embedding.
//
//   auto pieces = moat::echo::split_pieces("a b  c");   // {"a ", "b  ", "c"}
//   moat::echo::count_words("a b  c");                  // 3
#pragma once

#include <moat/backend.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moat::echo {

// ' ', \t, \n, \v, \f, \r. Inline: the word loops call it once per byte.
inline bool is_space(char c) {
  return c == ' ' || static_cast<unsigned char>(c - '\t') <= '\r' - '\t';
}
size_t count_words(std::string_view text);            // 8 bytes at a time
size_t count_words_reference(std::string_view text);  // byte by byte: its test's reference
// Pieces in order; leading whitespace joins the first piece. Views into `text`.
std::vector<std::string_view> split_pieces(std::string_view text);
// The word of a piece: the piece without its whitespace.
std::string_view piece_word(std::string_view piece);

struct cut_result {
  size_t length = 0;  // bytes of the text that are emitted
  moat_finish_reason finish = MOAT_FINISH_STOP;
};
// Where generation of `text` ends: at the first stop string that is complete within the first
// max_words words (the stop itself is not emitted, finish "stop"), else after max_words words
// (finish "length" when words were left out), else at the end (finish "stop").
// max_words < 0 means no limit.
cut_result apply_limits(std::string_view text, int64_t max_words,
                        std::span<const std::string_view> stops);
cut_result apply_limits(std::string_view text, int64_t max_words,
                        const std::vector<std::string>& stops);

// Byte lengths of consecutive chunks of `chars` code points each (the last may be shorter);
// a chunk never splits a UTF-8 character. Invalid bytes count as one character each.
std::vector<size_t> chunk_lengths(std::string_view text, size_t chars);

// A unit vector of `dim` floats derived only from `text` (FNV-1a seed, splitmix64 stream).
std::vector<float> embed_text(std::string_view text, size_t dim);

uint64_t fnv1a(std::string_view text);

}  // namespace moat::echo
