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
#include <cstring>
#include <span>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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

namespace detail {
constexpr uint64_t bytes_of(uint8_t b) {
  return 0x0101010101010101ull * b;
}
// The high bit of each byte of `x` that is whitespace (is_space), exactly: no carry crosses a
// byte because every sum below stays under 0x100 per byte.
inline uint64_t space_bits(uint64_t x) {
  const uint64_t high = bytes_of(0x80);
  const uint64_t low7 = x & bytes_of(0x7F);
  const uint64_t t = x ^ bytes_of(' ');  // zero bytes where x is ' '
  const uint64_t blank = ~(((t & bytes_of(0x7F)) + bytes_of(0x7F)) | t) & high;
  // '\t'..'\r' (9..13): low7 >= 9 and not low7 >= 14, and the byte's own high bit clear.
  const uint64_t control = (low7 + bytes_of(0x80 - 9)) & ~(low7 + bytes_of(0x80 - 14)) & ~x & high;
  return blank | control;
}
}  // namespace detail

// Calls on_word(begin, end) for each word of `text` (a maximal run of non-whitespace), in
// order. A block of bytes at a time: a mask of the block's whitespace bytes, against the same
// mask shifted by one byte, gives the bytes where a word starts or ends, visited lowest first.
// Blocks are 16 bytes with SSE2 (two compares and a movemask), else 8 (space_bits). Same words
// as a byte loop with is_space (its test compares them).
template <typename F>
void for_each_word(std::string_view text, F&& on_word) {
  const char* p = text.data();
  const size_t n = text.size();
#if defined(__SSE2__)
  constexpr size_t block = 16;
  using mask_t = uint32_t;  // bit k: byte k of the block is whitespace
  auto spaces_of = [](const char* at) -> mask_t {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    const __m128i blank = _mm_cmpeq_epi8(x, _mm_set1_epi8(' '));
    // '\t'..'\r': x - 9 is 0..4 as an unsigned byte exactly then.
    const __m128i shifted = _mm_sub_epi8(x, _mm_set1_epi8(9));
    const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(shifted, _mm_set1_epi8(4)), shifted);
    return static_cast<mask_t>(_mm_movemask_epi8(_mm_or_si128(blank, control)));
  };
  constexpr unsigned flag_shift = 1;  // bits per byte in the mask
#else
  constexpr size_t block = 8;
  using mask_t = uint64_t;  // the high bit of byte k: byte k is whitespace
  auto spaces_of = [](const char* at) -> mask_t {
    uint64_t x;
    std::memcpy(&x, at, sizeof x);  // little-endian: byte k is bits 8k..8k+7
    return detail::space_bits(x);
  };
  constexpr unsigned flag_shift = 8;
#endif
  constexpr mask_t last_flag = mask_t{1} << (flag_shift * block - 1);
  const unsigned low = flag_shift == 8 ? 7 : 0;  // the flag's bit within its byte's bits
  mask_t before = 1;  // the flag of the byte before the block (before the text: a space)
  size_t begin = 0;   // where the current word started
  char tail[block];
  // Up to and including i == n: the last block is padded with spaces, which end the last word
  // (a block of padding only when n is a multiple of the block). One call site of on_word.
  for (size_t i = 0; i <= n; i += block) {
    const char* at = p + i;
    if (i + block > n) {
      std::memset(tail, ' ', block);
      if (i < n) std::memcpy(tail, p + i, n - i);
      at = tail;
    }
    const mask_t spaces = spaces_of(at);
    mask_t edges = spaces ^ ((spaces << flag_shift) | (before << low));
    if constexpr (flag_shift == 8) edges &= detail::bytes_of(0x80);
    before = (spaces & last_flag) != 0;
    while (edges != 0) {
      const unsigned bit = static_cast<unsigned>(__builtin_ctzll(edges));
      const size_t k = i + bit / flag_shift;
      if ((spaces >> bit) & 1) {
        on_word(begin, k);  // a space after a word
      } else {
        begin = k;  // a word after a space
      }
      edges &= edges - 1;
    }
  }
}

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
// The first of those lengths (0 for an empty text).
size_t chunk_length(std::string_view text, size_t chars);

// A unit vector of `dim` floats derived only from `text` (FNV-1a seed, splitmix64 stream).
std::vector<float> embed_text(std::string_view text, size_t dim);

uint64_t fnv1a(std::string_view text);

}  // namespace moat::echo
