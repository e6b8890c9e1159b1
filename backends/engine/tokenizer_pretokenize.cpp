// Hand-written scanners for the GPT-2 and Llama-3 pre-tokenizer regexes. Each tries the pattern's
// alternatives in order at the current position, as a backtracking regex engine would, and the
// first that matches wins.
#include "engine/tokenizer_pretokenize.h"

#include "engine/text_unicode.h"

namespace moat::engine {

namespace {

// The input decoded once: code points and the byte offset where each starts (plus the end).
struct code_points {
  std::vector<char32_t> cp;
  std::vector<size_t> at;
  explicit code_points(std::string_view s) {
    for (size_t i = 0; i < s.size(); i += utf8_char_length(s, i)) {
      cp.push_back(utf8_decode_at(s, i));
      at.push_back(i);
    }
    at.push_back(s.size());
  }
  size_t size() const { return cp.size(); }
  char32_t operator[](size_t i) const { return i < cp.size() ? cp[i] : 0; }
  bool valid(size_t i) const { return i < cp.size(); }
};

bool is_l(char32_t c) { return is_unicode_letter(c); }
bool is_n(char32_t c) { return is_unicode_number(c); }
bool is_s(char32_t c) { return is_unicode_whitespace(c); }
bool is_nl(char32_t c) { return c == '\r' || c == '\n'; }
bool is_other(char32_t c) { return !is_s(c) && !is_l(c) && !is_n(c); }

char32_t lower_ascii(char32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// 's|'t|'re|'ve|'m|'ll|'d at i; returns the length in code points or 0.
size_t match_contraction(const code_points& t, size_t i, bool ignore_case) {
  if (t[i] != '\'') return 0;
  auto c = [&](size_t k) { return ignore_case ? lower_ascii(t[i + k]) : t[i + k]; };
  if (!t.valid(i + 1)) return 0;
  const char32_t a = c(1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (!t.valid(i + 2)) return 0;
  const char32_t b = c(2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

size_t run(const code_points& t, size_t i, bool (*pred)(char32_t)) {
  size_t j = i;
  while (t.valid(j) && pred(t[j])) ++j;
  return j - i;
}

// \s+(?!\S) then \s+ : a whitespace run, leaving its last character for the next word when a
// non-space follows (so " world" keeps its space), unless the run is a single character.
size_t match_whitespace(const code_points& t, size_t i) {
  const size_t n = run(t, i, is_s);
  if (n == 0) return 0;
  if (!t.valid(i + n)) return n;
  return n > 1 ? n - 1 : 1;
}

size_t next_gpt2(const code_points& t, size_t i) {
  if (size_t n = match_contraction(t, i, false)) return n;
  const size_t sp = t[i] == ' ' ? 1 : 0;
  if (size_t n = run(t, i + sp, is_l)) return sp + n;
  if (size_t n = run(t, i + sp, is_n)) return sp + n;
  if (size_t n = run(t, i + sp, is_other)) return sp + n;
  if (size_t n = match_whitespace(t, i)) return n;
  return 1;
}

size_t next_llama3(const code_points& t, size_t i) {
  if (size_t n = match_contraction(t, i, true)) return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!is_nl(t[i]) && !is_l(t[i]) && !is_n(t[i]) && t.valid(i + 1) && is_l(t[i + 1]))
    return 1 + run(t, i + 1, is_l);
  if (size_t n = run(t, i, is_l)) return n;
  // \p{N}{1,3}
  if (size_t n = run(t, i, is_n)) return n < 3 ? n : 3;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  const size_t sp = t[i] == ' ' ? 1 : 0;
  if (size_t n = run(t, i + sp, is_other)) return sp + n + run(t, i + sp + n, is_nl);
  // \s*[\r\n]+ : up to and including the last newline of the whitespace run
  const size_t ws = run(t, i, is_s);
  for (size_t k = ws; k > 0; --k)
    if (is_nl(t[i + k - 1])) return k;
  if (size_t n = match_whitespace(t, i)) return n;
  return 1;
}

}  // namespace

void pretokenize(pretokenizer_kind kind, std::string_view text, std::vector<std::string_view>& words) {
  if (text.empty()) return;
  if (kind == pretokenizer_kind::none) {
    words.push_back(text);
    return;
  }
  const code_points t(text);
  for (size_t i = 0; i < t.size();) {
    const size_t n = kind == pretokenizer_kind::gpt2 ? next_gpt2(t, i) : next_llama3(t, i);
    words.push_back(text.substr(t.at[i], t.at[i + n] - t.at[i]));
    i += n;
  }
}

void split_digits(std::string_view text, std::vector<std::string_view>& parts) {
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_char_length(text, i);
    if (is_unicode_number(utf8_decode_at(text, i))) {
      if (i > start) parts.push_back(text.substr(start, i - start));
      parts.push_back(text.substr(i, n));
      start = i + n;
    }
    i += n;
  }
  if (start < text.size()) parts.push_back(text.substr(start));
}

}  // namespace moat::engine
