#include "engine/text_unicode.h"

#include <algorithm>
#include <array>
#include <span>

#include "engine/text_unicode_tables.h"

namespace moat::engine {

size_t utf8_char_length(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  size_t n;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) { n = 2; min = 0x80; }
  else if ((b0 & 0xF0) == 0xE0) { n = 3; min = 0x800; }
  else if ((b0 & 0xF8) == 0xF0) { n = 4; min = 0x10000; }
  else return 1;
  if (i + n > s.size()) return 1;
  char32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 1;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 1;
  return n;
}

char32_t utf8_decode_at(std::string_view s, size_t i) {
  const size_t n = utf8_char_length(s, i);
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (n == 1) return b0 < 0x80 ? b0 : 0xFFFD;
  char32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

bool in_ranges(const unicode_range* table, size_t size, char32_t cp) {
  std::span<const unicode_range> r(table, size);
  auto it = std::upper_bound(r.begin(), r.end(), cp,
                             [](char32_t c, const unicode_range& x) { return c < x.first; });
  return it != r.begin() && cp <= std::prev(it)->last;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 + n in byte order.
const std::array<char32_t, 256>& byte_map() {
  static const std::array<char32_t, 256> map = [] {
    std::array<char32_t, 256> m{};
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      m[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return m;
  }();
  return map;
}

}  // namespace

bool is_unicode_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(unicode_letters, unicode_letters_size, cp);
}

bool is_unicode_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(unicode_numbers, unicode_numbers_size, cp);
}

bool is_unicode_whitespace(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::string bytes_to_gpt2_unicode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8_append(out, byte_map()[static_cast<unsigned char>(c)]);
  return out;
}

std::optional<std::string> gpt2_unicode_to_bytes(std::string_view piece) {
  static const auto inverse = [] {
    std::array<int, 0x144> inv{};
    inv.fill(-1);
    for (int b = 0; b < 256; ++b) inv[byte_map()[b]] = b;
    return inv;
  }();
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    const size_t n = utf8_char_length(piece, i);
    const char32_t cp = utf8_decode_at(piece, i);
    if (cp >= inverse.size() || inverse[cp] < 0 || (n == 1 && static_cast<unsigned char>(piece[i]) >= 0x80))
      return std::nullopt;
    out.push_back(static_cast<char>(inverse[cp]));
    i += n;
  }
  return out;
}

}  // namespace moat::engine
