#include "engine/detokenizer.h"

#include "engine/text_unicode.h"

namespace moat::engine {

namespace {

const char replacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the longest prefix of s[i..] that could begin a valid UTF-8 sequence (0 if s[i] cannot
// start one), and the full length that sequence needs.
std::pair<size_t, size_t> valid_prefix(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 2;
  else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0, 1};
  }
  size_t k = 1;
  for (; k < need && i + k < s.size(); ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
  }
  return {k, need};
}

}  // namespace

size_t utf8_complete_prefix(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const size_t n = utf8_char_length(bytes, i);
    if (n > 1 || static_cast<unsigned char>(bytes[i]) < 0x80) {
      i += n;
      continue;
    }
    auto [k, need] = valid_prefix(bytes, i);
    if (k > 0 && k < need && i + k == bytes.size()) return i;  // a character still arriving
    i += k > 0 ? k : 1;                                         // invalid: counts as complete
  }
  return i;
}

std::string utf8_sanitize(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = utf8_char_length(bytes, i);
    if (n > 1 || static_cast<unsigned char>(bytes[i]) < 0x80) {
      out.append(bytes.substr(i, n));
      i += n;
      continue;
    }
    // One U+FFFD per maximal invalid subpart, as Python's decode(errors="replace").
    const size_t k = valid_prefix(bytes, i).first;
    out += replacement;
    i += k > 0 ? k : 1;
  }
  return out;
}

detokenizer::detokenizer(const tokenizer& tok, detokenizer_options options)
    : tok_(tok),
      skip_special_(options.skip_special),
      strip_leading_space_(options.strip_leading_space.value_or(tok.strips_leading_space())) {}

std::string detokenizer::push(token_id id) {
  if (id < 0 || id >= tok_.vocab_size()) return {};
  if (skip_special_ && tok_.is_special(id)) return {};
  std::string_view bytes = tok_.token_bytes(id);
  if (!started_ && !bytes.empty()) {
    started_ = true;
    if (strip_leading_space_ && bytes[0] == ' ') bytes.remove_prefix(1);
  }
  pending_ += bytes;
  return drain_complete();
}

std::string detokenizer::drain_complete() {
  const size_t n = utf8_complete_prefix(pending_);
  if (n == 0) return {};
  std::string out = utf8_sanitize(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string detokenizer::finish() {
  std::string out = utf8_sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace moat::engine
