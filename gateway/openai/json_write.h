// Internal: the small JSON writer the serializers share. Appends into a caller-owned std::string
// so that a whole response is built in one buffer with no intermediate strings.
//
//   std::string out;
//   out += "{\"n\":";
//   moat::openai::detail::append_uint(out, 42);
//   out += '}';
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moat::openai::detail {

void append_int(std::string& out, int64_t value);
void append_uint(std::string& out, uint64_t value);
// Shortest text that reads back to the same double (std::to_chars); NaN and infinities, which
// JSON cannot carry, are written as `null`.
void append_double(std::string& out, double value);
// The same for float: embeddings are float32, and the float's own shortest form is shorter.
void append_float(std::string& out, float value);
// A logprob: -inf (a masked token) is written as -9999.0, the value OpenAI documents for
// "very unlikely"; NaN also maps there, so the field is always a number.
void append_logprob(std::string& out, double value);
// "key": with the key already known to need no escaping.
inline void append_key(std::string& out, std::string_view key) {
  out += '"';
  out += key;
  out += "\":";
}

}  // namespace moat::openai::detail
