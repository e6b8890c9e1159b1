// Internal: the small JSON writer the serializers share. A json_out appends into a caller-owned
// std::string so that a whole response is built in one buffer with no intermediate strings.
//
//   std::string out;
//   moat::openai::detail::json_out w(out);
//   w += "{\"n\":";
//   moat::openai::detail::append_uint(w, 42);
//   w += '}';
//   w.done();  // `out` is now {"n":42}
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace moat::openai::detail {

// Collects a response's small pieces in a buffer of its own and hands them to `out` in one
// append when it fills or at done(). A piece costs one compare and a copy instead of
// std::string::append's call, capacity check and size update: a literal's length is a constant
// once inlined, so a short one is a few moves. A response is ~20 pieces per choice and a stream
// event ~10, each a few bytes, so that overhead was most of their cost. A piece longer than
// half the buffer goes straight to `out`. OWNERSHIP: `out` must outlive the json_out.
class json_out {
 public:
  // `expect`: about how many bytes will be written, reserved in `out` when they will not fit in
  // one buffer (so a long response grows its string once).
  explicit json_out(std::string& out, size_t expect = 0) : out_(out) {
    if (expect > sizeof buf_) out_.reserve(out_.size() + expect);
  }
  json_out(const json_out&) = delete;
  json_out& operator=(const json_out&) = delete;

  // A raw cursor with room for `n` (at most 64) bytes; advance(k) after writing k <= n there.
  char* room(size_t n) {
    if (sizeof buf_ - used_ < n) flush();
    return buf_ + used_;
  }
  void advance(size_t k) { used_ += k; }
  // Whether room(n) fits without a flush (a caller's short path can then skip the flush's code).
  bool has_room(size_t n) const { return sizeof buf_ - used_ >= n; }

  json_out& operator+=(std::string_view s) {
    if (s.empty()) return *this;  // an empty view's data() may be null, which memcpy may not get
    if (sizeof buf_ - used_ < s.size()) {
      spill(s);
    } else {
      std::memcpy(buf_ + used_, s.data(), s.size());
      used_ += s.size();
    }
    return *this;
  }
  json_out& operator+=(char c) {
    *room(1) = c;
    ++used_;
    return *this;
  }
  void append(const char* s, size_t n) { *this += std::string_view(s, n); }

  // Appends what is buffered to `out`. Required before `out` is read: without it the last
  // buffer's worth of text never reaches it (a destructor that appends could throw).
  void done() { flush(); }

 private:
  void flush() {
    out_.append(buf_, used_);
    used_ = 0;
  }
  void spill(std::string_view s);

  std::string& out_;
  size_t used_ = 0;
  char buf_[1024];
};

// True when none of the 8 bytes of `v` needs attention: all ASCII, none below 0x20, no '"' or
// '\\'. Most answer text is plain, so a scan runs 8 bytes per step instead of one. Each term is
// the usual "has a zero byte" test (x - 0x01..) & ~x & 0x80.., exact as a yes/no answer.
[[gnu::always_inline]] inline bool plain_word(uint64_t v) {
  constexpr uint64_t ones = 0x0101010101010101ull;
  constexpr uint64_t high = 0x8080808080808080ull;
  const uint64_t quote = v ^ (ones * '"');
  const uint64_t backslash = v ^ (ones * '\\');
  const uint64_t below_space = (v - ones * 0x20) & ~v;
  const uint64_t is_quote = (quote - ones) & ~quote;
  const uint64_t is_backslash = (backslash - ones) & ~backslash;
  return ((v | below_space | is_quote | is_backslash) & high) == 0;
}
[[gnu::always_inline]] inline uint64_t load_word(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Any text, escaped: the general path of append_json_string (out of line).
void append_json_string_escaped(json_out& out, std::string_view text);

// Plain text of up to 16 bytes (a token or a word: the usual stream delta) as two 8-byte words
// that need no escaping: `first` holds bytes 0..7 and `last` the last 8 (overlapping `first`;
// up to 8 bytes both are the text, read as two overlapping 4-byte halves or byte by byte below
// 4, and padded with spaces). False when the text is longer or a byte needs attention.
[[gnu::always_inline]] inline bool short_plain_words(std::string_view text, uint64_t& first,
                                                     uint64_t& last) {
  const char* s = text.data();
  const size_t size = text.size();
  if (size > 16) return false;
  if (size > 8) {
    first = load_word(s);
    last = load_word(s + size - 8);
    return plain_word(first) && plain_word(last);
  }
  // Little-endian: byte i of the text is byte i of the word; the bytes past `size` are spaces
  // (plain), so the test looks at the text alone. An empty view's data() may be null.
  uint64_t v = 0;
  if (size >= 4) {
    uint32_t a;
    uint32_t b;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + size - 4, 4);
    v = a | (uint64_t{b} << (8 * (size - 4)));  // overlapping bytes are the same bytes
  } else if (size != 0) {
    v = uint64_t{static_cast<unsigned char>(s[0])} |
        uint64_t{static_cast<unsigned char>(s[size / 2])} << (8 * (size / 2)) |
        uint64_t{static_cast<unsigned char>(s[size - 1])} << (8 * (size - 1));
  }
  if (size < 8) v |= 0x2020202020202020ull & (~uint64_t{0} << (8 * size));
  first = v;
  last = v;
  return plain_word(v);
}

// Writes `"text"` (size + 2 bytes, but 18 may be touched) at `at`, from short_plain_words.
[[gnu::always_inline]] inline void store_short_string(char* at, size_t size, uint64_t first,
                                                      uint64_t last) {
  at[0] = '"';
  std::memcpy(at + 1, &first, 8);
  // Up to 8 bytes: `last` is `first`, stored again over itself. Past 8: the last 8 bytes, over
  // the middle of the first copy's tail.
  std::memcpy(at + 1 + (size > 8 ? size - 8 : 0), &last, 8);
  at[1 + size] = '"';
}

// A JSON string literal: quotes, escapes, and each invalid UTF-8 byte replaced by U+FFFD.
// Inline for plain text of up to 16 bytes (short_plain_words), tested and copied with no call;
// anything else takes the general path.
[[gnu::always_inline]] inline void append_json_string(json_out& out, std::string_view text) {
  uint64_t first;
  uint64_t last;
  if (!short_plain_words(text, first, last)) return append_json_string_escaped(out, text);
  store_short_string(out.room(18), text.size(), first, last);
  out.advance(text.size() + 2);
}
void append_int(json_out& out, int64_t value);
void append_uint(json_out& out, uint64_t value);
// Shortest text that reads back to the same double (std::to_chars); NaN and infinities, which
// JSON cannot carry, are written as `null`.
void append_double(json_out& out, double value);
// The same for float: embeddings are float32, and the float's own shortest form is shorter.
void append_float(json_out& out, float value);
// A logprob: -inf (a masked token) is written as -9999.0, the value OpenAI documents for
// "very unlikely"; NaN also maps there, so the field is always a number.
void append_logprob(json_out& out, double value);

}  // namespace moat::openai::detail
