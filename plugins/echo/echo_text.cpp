// Words, pieces, limits, chunks and embeddings for the echo backend.
#include "echo_text.h"

#include <cmath>
#include <cstring>

namespace moat::echo {

using detail::bytes_of;
using detail::space_bits;

size_t count_words(std::string_view text) {
  // A word starts at a non-space byte after a space (or at the start). Eight bytes at a time:
  // the space flags of the chunk, shifted one byte, give each byte's predecessor.
  size_t words = 0;
  const char* p = text.data();
  const size_t n = text.size();
  uint64_t before = 0x80;  // the byte before the text counts as a space
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, p + i, sizeof x);  // little-endian: byte k of the text is bits 8k..8k+7
    const uint64_t spaces = space_bits(x);
    const uint64_t starts = ~spaces & ((spaces << 8) | before) & bytes_of(0x80);
    words += ((starts >> 7) * bytes_of(1)) >> 56;  // the number of flags set
    before = spaces >> 56;
  }
  bool in_word = before == 0;
  for (; i < n; ++i) {
    const bool space = is_space(p[i]);
    words += !space && !in_word;
    in_word = !space;
  }
  return words;
}

size_t count_words_reference(std::string_view text) {
  size_t words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = is_space(c);
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

std::vector<std::string_view> split_pieces(std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;  // leading whitespace joins the first piece
  while (i < text.size()) {
    while (i < text.size() && !is_space(text[i])) ++i;  // the word
    while (i < text.size() && is_space(text[i])) ++i;   // its trailing whitespace
    pieces.push_back(text.substr(start, i - start));
    start = i;
  }
  if (start < text.size()) pieces.push_back(text.substr(start));  // whitespace only
  return pieces;
}

std::string_view piece_word(std::string_view piece) {
  size_t begin = 0;
  while (begin < piece.size() && is_space(piece[begin])) ++begin;
  size_t end = begin;
  while (end < piece.size() && !is_space(piece[end])) ++end;
  return piece.substr(begin, end - begin);
}

cut_result apply_limits(std::string_view text, int64_t max_words,
                        const std::vector<std::string>& stops) {
  std::vector<std::string_view> views(stops.begin(), stops.end());
  return apply_limits(text, max_words, std::span<const std::string_view>(views));
}

cut_result apply_limits(std::string_view text, int64_t max_words,
                        std::span<const std::string_view> stops) {
  cut_result result{text.size(), MOAT_FINISH_STOP};
  size_t limit = text.size();
  bool length_cut = false;
  // A text of at most max_words bytes cannot hold more words (each takes a byte): the usual
  // case, where the budget is the context left, costs no split.
  if (max_words >= 0 && text.size() > static_cast<size_t>(max_words)) {
    const auto pieces = split_pieces(text);
    if (pieces.size() > static_cast<size_t>(max_words) &&
        count_words(text) > static_cast<size_t>(max_words)) {
      limit = 0;
      for (int64_t k = 0; k < max_words; ++k) limit += pieces[static_cast<size_t>(k)].size();
      length_cut = true;
    }
  }
  // The stop that completes first ends generation; it must complete inside what was generated.
  size_t best_end = SIZE_MAX;
  size_t best_start = 0;
  for (const std::string_view stop : stops) {
    if (stop.empty()) continue;
    const size_t at = text.find(stop);
    if (at == std::string_view::npos || at + stop.size() > limit) continue;
    if (at + stop.size() < best_end) {
      best_end = at + stop.size();
      best_start = at;
    }
  }
  if (best_end != SIZE_MAX) return {best_start, MOAT_FINISH_STOP};
  if (length_cut) return {limit, MOAT_FINISH_LENGTH};
  return result;
}

size_t chunk_length(std::string_view text, size_t chars) {
  if (chars == 0) chars = 1;
  size_t i = 0;
  for (size_t n = 0; n < chars && i < text.size(); ++n) {
    ++i;  // the lead byte, then its continuation bytes
    while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
  }
  return i;
}

std::vector<size_t> chunk_lengths(std::string_view text, size_t chars) {
  std::vector<size_t> lengths;
  for (size_t i = 0; i < text.size();) {
    const size_t length = chunk_length(text.substr(i), chars);
    lengths.push_back(length);
    i += length;
  }
  return lengths;
}

uint64_t fnv1a(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::vector<float> embed_text(std::string_view text, size_t dim) {
  std::vector<float> vector(dim);
  uint64_t state = fnv1a(text);
  double norm = 0;
  for (size_t i = 0; i < dim; ++i) {
    // splitmix64: a full-period generator whose output is well mixed even for close seeds.
    state += 0x9e3779b97f4a7c15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const double value = static_cast<double>(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    vector[i] = static_cast<float>(value);
    norm += value * value;
  }
  norm = std::sqrt(norm);
  if (norm == 0) {
    if (dim > 0) vector[0] = 1.0f;  // unreachable in practice; keeps the contract
    return vector;
  }
  for (float& v : vector) v = static_cast<float>(v / norm);
  return vector;
}

}  // namespace moat::echo
