// JSON text output: string escaping with UTF-8 repair, and round-trip-safe numbers.
#include "openai/json_write.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "openai/protocol.h"

namespace moat::openai {
namespace {

constexpr std::string_view replacement_char = "\xEF\xBF\xBD";  // U+FFFD

// Which ASCII bytes can be copied as they are: everything printable except '"' and '\\'.
constexpr std::array<bool, 256> make_plain_table() {
  std::array<bool, 256> table{};
  for (int c = 0x20; c < 0x80; ++c) table[static_cast<size_t>(c)] = c != '"' && c != '\\';
  return table;
}
constexpr std::array<bool, 256> plain_byte = make_plain_table();

// The 8 bytes at `p` need no attention (detail::plain_word).
bool plain_at(const unsigned char* p) {
  return detail::plain_word(detail::load_word(reinterpret_cast<const char*>(p)));
}

// Where the plain bytes from `i` end, 16 at a time, stopping before a block of 16 that holds a
// byte needing attention (or fewer than 16 left). With SSE2 (every x86-64) a block is three
// compares and a mask, ~4x fewer instructions than two plain_word tests: a 70-byte answer is
// ~80 instructions of scan instead of ~250. Elsewhere the 8-byte loop does it all.
size_t skip_plain_blocks(const unsigned char* s, size_t i, size_t size) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  while (i + 16 <= size) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    // Signed: a byte of 0x80 or more is negative, so below 0x20 as well as the controls.
    const __m128i special =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                     _mm_cmplt_epi8(v, space));
    if (_mm_movemask_epi8(special) != 0) break;
    i += 16;
  }
#endif
  return i;
}

// Length of the valid UTF-8 sequence starting at s[0] (2..4), or 0 when it is invalid: a stray
// continuation byte, an overlong form, a surrogate, a value past U+10FFFF or a truncation.
size_t valid_sequence_length(const unsigned char* s, size_t left) {
  const unsigned char lead = s[0];
  auto cont = [&](size_t i) { return i < left && (s[i] & 0xC0) == 0x80; };
  if (lead >= 0xC2 && lead <= 0xDF) return cont(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (lead == 0xE0 && s[1] < 0xA0) return 0;  // overlong
    if (lead == 0xED && s[1] >= 0xA0) return 0; // UTF-16 surrogate
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (lead == 0xF0 && s[1] < 0x90) return 0;  // overlong
    if (lead == 0xF4 && s[1] >= 0x90) return 0; // past U+10FFFF
    return 4;
  }
  return 0;
}

void append_control_escape(detail::json_out& out, unsigned char c) {
  switch (c) {
    case '"': out += "\\\""; return;
    case '\\': out += "\\\\"; return;
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    case '\b': out += "\\b"; return;
    case '\f': out += "\\f"; return;
    default: break;
  }
  static constexpr char hex[] = "0123456789abcdef";
  const char buf[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
  out.append(buf, sizeof buf);
}

}  // namespace

namespace detail {

void json_out::spill(std::string_view s) {
  flush();
  if (s.size() > sizeof buf_ / 2) {
    out_.append(s);  // long: one copy, straight
    return;
  }
  std::memcpy(buf_, s.data(), s.size());
  used_ = s.size();
}

void append_json_string_escaped(json_out& out, std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  out += '"';
  size_t run_start = 0;  // bytes [run_start, i) are copied in one piece
  size_t i = 0;
  while (i < size) {
    i = skip_plain_blocks(s, i, size);
    while (i + 8 <= size && plain_at(s + i)) i += 8;
    if (i == size) break;
    // Fewer than 8 bytes left: when the last 8 (overlapping what was read) are plain, so is
    // the rest.
    if (i + 8 > size && size >= 8 && plain_at(s + size - 8)) {
      i = size;
      break;
    }
    const unsigned char c = s[i];
    if (plain_byte[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = valid_sequence_length(s + i, size - i);
      if (len != 0) {
        i += len;
        continue;
      }
      out.append(text.data() + run_start, i - run_start);
      out += replacement_char;
      run_start = ++i;
      continue;
    }
    out.append(text.data() + run_start, i - run_start);
    append_control_escape(out, c);
    run_start = ++i;
  }
  out.append(text.data() + run_start, size - run_start);
  out += '"';
}

void append_int(json_out& out, int64_t value) {
  char* at = out.room(24);
  const auto result = std::to_chars(at, at + 24, value);
  out.advance(static_cast<size_t>(result.ptr - at));
}

namespace {

// append_uint's general path (and a full buffer), out of line so that the short one saves no
// registers.
[[gnu::noinline]] void append_uint_to_chars(json_out& out, uint64_t value) {
  char* at = out.room(24);
  const auto result = std::to_chars(at, at + 24, value);
  out.advance(static_cast<size_t>(result.ptr - at));
}

}  // namespace

void append_uint(json_out& out, uint64_t value) {
  // The usual numbers (a choice's index, small token counts) are one or two digits: written
  // directly instead of through to_chars' length search and table.
  if (value < 100 && out.has_room(2)) {
    char* at = out.room(2);
    if (value < 10) {
      at[0] = static_cast<char>('0' + value);
      out.advance(1);
    } else {
      at[0] = static_cast<char>('0' + value / 10);
      at[1] = static_cast<char>('0' + value % 10);
      out.advance(2);
    }
    return;
  }
  append_uint_to_chars(out, value);
}

void append_double(json_out& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char* at = out.room(32);
  const auto result = std::to_chars(at, at + 32, value);
  out.advance(static_cast<size_t>(result.ptr - at));
}

void append_float(json_out& out, float value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char* at = out.room(24);
  const auto result = std::to_chars(at, at + 24, value);
  out.advance(static_cast<size_t>(result.ptr - at));
}

void append_logprob(json_out& out, double value) {
  if (std::isnan(value) || value < -9999.0) value = -9999.0;
  if (value > 0.0) value = 0.0;  // a probability is at most 1; rounding can overshoot
  append_double(out, value);
}

}  // namespace detail

void append_json_string(std::string& out, std::string_view text) {
  detail::json_out w(out, text.size() + 2);
  detail::append_json_string(w, text);
  w.done();
}

}  // namespace moat::openai
