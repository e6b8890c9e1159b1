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

// A JSON string literal: quotes, escapes, and each invalid UTF-8 byte replaced by U+FFFD.
void append_json_string(json_out& out, std::string_view text);
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
