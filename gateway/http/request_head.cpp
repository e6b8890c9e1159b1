#include "http/request_head.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "util/ascii.h"

namespace moat::http {

namespace {

// RFC 9110 token characters (method and field names).
constexpr std::array<bool, 256> make_token_table() {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[static_cast<size_t>(c)] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}
constexpr std::array<bool, 256> token_char = make_token_table();

bool is_token(char c) {
  return token_char[static_cast<unsigned char>(c)];
}

// Printable ASCII and tab: anything else in a value (obs-text, controls) goes to Beast.
bool plain_value_byte(char c) {
  return (c >= 0x20 && c < 0x7f) || c == '\t';
}

#if defined(__SSE2__)
// 16 bytes at `p` (the caller checked they are inside the head).
__m128i load16(const char* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
// Bit k set when byte k of a 16-byte compare result is set.
unsigned mask_of(__m128i v) {
  return static_cast<unsigned>(_mm_movemask_epi8(v));
}
#else
// True when all 8 bytes are printable ASCII (0x20..0x7e), tested at once: no byte below 0x20,
// none with the high bit, no DEL. Each term is the exact "has such a byte" test.
bool printable_word(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  constexpr uint64_t ones = 0x0101010101010101ull;
  constexpr uint64_t high = 0x8080808080808080ull;
  const uint64_t del = v ^ (ones * 0x7f);
  const uint64_t below_space = (v - ones * 0x20) & ~v;
  const uint64_t is_del = (del - ones) & ~del;
  return ((v | below_space | is_del) & high) == 0;
}
#endif

// The scans below return the index of the first byte from `i` on that does not belong (or
// `size`), looking at 16 bytes per step while 16 remain before `size` and byte by byte after that
// (or after the first step that meets such a byte). Each stops at a CR at the latest.

// Token characters. The wide step passes letters, digits and '-' (all a field name usually
// has); any other byte, token or not, is left to the table.
[[gnu::always_inline]] inline size_t skip_token(const char* p, size_t i, size_t size) {
#if defined(__SSE2__)
  while (i + 16 <= size) {
    const __m128i v = load16(p + i);
    // OR 0x20 folds A-Z onto a-z; it moves no other byte into a-z (signed compares: bytes of
    // 0x80 and up are negative, outside every range here).
    const __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
    const __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(folded, _mm_set1_epi8('a' - 1)),
                                         _mm_cmplt_epi8(folded, _mm_set1_epi8('z' + 1)));
    const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                        _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
    const __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
    const unsigned other = ~mask_of(_mm_or_si128(_mm_or_si128(letter, digit), dash)) & 0xffffu;
    if (other != 0) {
      i += static_cast<size_t>(__builtin_ctz(other));
      break;
    }
    i += 16;
  }
#endif
  while (i < size && is_token(p[i])) ++i;
  return i;
}

// Visible ASCII (0x21..0x7e): a request target.
[[gnu::always_inline]] inline size_t skip_visible(const char* p, size_t i, size_t size) {
#if defined(__SSE2__)
  while (i + 16 <= size) {
    const __m128i v = load16(p + i);
    const unsigned bad = mask_of(_mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x21)),
                                              _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))));
    if (bad != 0) return i + static_cast<size_t>(__builtin_ctz(bad));
    i += 16;
  }
#endif
  while (i < size && p[i] > 0x20 && p[i] < 0x7f) ++i;
  return i;
}

// Plain value bytes (printable ASCII or tab): anything else in a value (obs-text, controls, a
// bare CR or LF) goes to Beast.
[[gnu::always_inline]] inline size_t skip_value(const char* p, size_t i, size_t size) {
#if defined(__SSE2__)
  while (i + 16 <= size) {
    const __m128i v = load16(p + i);
    const __m128i low = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')),
                                         _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    const unsigned bad = mask_of(_mm_or_si128(low, _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))));
    if (bad != 0) return i + static_cast<size_t>(__builtin_ctz(bad));
    i += 16;
  }
#else
  while (i + 8 <= size && printable_word(p + i)) i += 8;
#endif
  while (i < size && plain_value_byte(p[i])) ++i;
  return i;
}

// A field name (token characters) equals `lower`, a lowercase name of letters and '-' of the same
// length, ignoring case: compared 4 or 8 bytes at a time, the first and the last word (which
// may overlap), each OR 0x20. On token characters that fold is exact: it lowercases A-Z, keeps
// '-', and maps no other token byte onto a letter or '-'.
template <size_t n>
bool name_is(std::string_view name, const char (&lower)[n]) {
  constexpr size_t len = n - 1;
  static_assert(len >= 4 && len <= 24);
  using word = std::conditional_t<(len >= 8), uint64_t, uint32_t>;
  constexpr word fold = static_cast<word>(0x2020202020202020ull);
  if (name.size() != len) return false;
  const auto same = [&](size_t k) {
    word a;
    word b;
    std::memcpy(&a, name.data() + k, sizeof a);
    std::memcpy(&b, lower + k, sizeof b);
    return (a | fold) == b;
  };
  constexpr size_t last = len - sizeof(word);
  return same(0) && (len <= 2 * sizeof(word) || same(sizeof(word))) && same(last);
}

bool ows(char c) {
  return c == ' ' || c == '\t';
}

bool parse_length(std::string_view v, uint64_t& out) {
  if (v.empty() || v.size() > 18) return false;  // 18 digits cannot overflow; longer goes to Beast
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  out = n;
  return true;
}

}  // namespace

size_t find_head_end(std::string_view buffered) {
  const char* const p = buffered.data();
  const size_t size = buffered.size();
  uint32_t blank;  // "\r\n\r\n" as one word
  std::memcpy(&blank, "\r\n\r\n", 4);
  const auto blank_at = [p, size, blank](size_t at) {
    if (at + 4 > size) return false;
    uint32_t w;
    std::memcpy(&w, p + at, 4);
    return w == blank;
  };
  size_t i = 0;
#if defined(__SSE2__)
  // Each CR of 16 bytes at a time is a candidate (one per line of a head).
  for (; i + 16 <= size; i += 16) {
    unsigned cr = mask_of(_mm_cmpeq_epi8(load16(p + i), _mm_set1_epi8('\r')));
    while (cr != 0) {
      const size_t at = i + static_cast<size_t>(__builtin_ctz(cr));
      if (blank_at(at)) return at;
      cr &= cr - 1;
    }
  }
#endif
  for (; i < size; ++i) {
    if (p[i] == '\r' && blank_at(i)) return i;
  }
  return std::string_view::npos;
}

namespace {

// The plain head at the start of p[0, size): its size through its blank line, or 0 when the bytes
// are not a plain head or end before its blank line. Every scan is bounded by `size`.
size_t parse_head(const char* p, size_t size, size_t max_fields, std::vector<header_view>& fields,
                  plain_head& out) {
  fields.clear();
  out = plain_head{};

  // Request line: METHOD SP target SP HTTP/1.1 CRLF
  size_t i = skip_token(p, 0, size);
  if (i == 0 || i == size || p[i] != ' ') return 0;
  out.method = std::string_view(p, i);
  const size_t target_start = ++i;
  i = skip_visible(p, i, size);
  if (i == target_start || i == size || p[i] != ' ') return 0;
  out.target = std::string_view(p + target_start, i - target_start);
  ++i;
  constexpr std::string_view version = "HTTP/1.1\r\n";
  if (size - i < version.size() || std::string_view(p + i, version.size()) != version) return 0;
  i += version.size();

  // Fields, each `token ":" value CRLF`, up to the blank line.
  bool has_length = false;
  bool has_host = false;
  for (;;) {
    if (size - i < 2) return 0;  // the bytes end before the blank line
    if (p[i] == '\r') return p[i + 1] == '\n' ? i + 2 : 0;
    const size_t name_start = i;
    i = skip_token(p, i, size);
    const std::string_view name(p + name_start, i - name_start);
    if (name.empty() || i == size || p[i] != ':') return 0;
    // Leading OWS is left out of the value (usually one space), then the value runs to its
    // line's CR; anything but printable ASCII or tabs on the way (a bare CR or LF, a control,
    // DEL, obs-text) is not plain. Trailing OWS is left out too.
    ++i;
    while (i < size && ows(p[i])) ++i;
    const size_t value_start = i;
    i = skip_value(p, i, size);
    if (size - i < 2 || p[i] != '\r' || p[i + 1] != '\n') return 0;
    size_t value_end = i;
    while (value_end > value_start && ows(p[value_end - 1])) --value_end;
    const std::string_view value(p + value_start, value_end - value_start);
    i += 2;
    if (fields.size() == max_fields) return 0;
    fields.push_back({name, value});
    // By length first: most fields (Content-Type, Authorization, ...) match none of these.
    switch (name.size()) {
      case 14:  // content-length
        if (name_is(name, "content-length")) {
          if (has_length || !parse_length(value, out.content_length)) return 0;
          has_length = true;
        }
        break;
      case 17:  // transfer-encoding
        if (name_is(name, "transfer-encoding")) return 0;
        break;
      case 6:  // expect
        if (name_is(name, "expect")) return 0;
        break;
      case 7:  // upgrade
        if (name_is(name, "upgrade")) return 0;
        break;
      case 12:  // x-request-id (and content-type, which is not)
        if (out.request_id.data() == nullptr && name_is(name, "x-request-id")) {
          out.request_id = value;
        }
        break;
      case 4:  // host
        if (name_is(name, "host")) {
          if (has_host) return 0;
          has_host = true;
        }
        break;
      case 10:  // connection
        if (name_is(name, "connection")) {
          if (util::iequals(value, "close")) {
            out.keep_alive = false;
          } else if (!util::iequals(value, "keep-alive")) {
            return 0;
          }
        }
        break;
      default:
        break;
    }
  }
}

}  // namespace

bool parse_plain_head(std::string_view raw, size_t max_fields, std::vector<header_view>& fields,
                      plain_head& out) {
  if (raw.size() < 4 || raw.substr(raw.size() - 4) != "\r\n\r\n") return false;
  return parse_head(raw.data(), raw.size(), max_fields, fields, out) == raw.size();
}

size_t parse_buffered_plain_head(std::string_view buffered, size_t max_fields,
                                 std::vector<header_view>& fields, plain_head& out) {
  return parse_head(buffered.data(), buffered.size(), max_fields, fields, out);
}

}  // namespace moat::http
