// The RE2 syntax parsed into a Thompson NFA (pattern_automaton::build). The simulation over it is
// in pattern_automaton.cpp. See pattern_automaton.h for why this exists.
#include "policy/pattern_automaton.h"

#include <algorithm>
#include <stdexcept>

namespace moat::policy {

size_t decode_utf8(std::string_view s, size_t i, char32_t* cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len = 0;
  char32_t c = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    c = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    c = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    c = b0 & 0x07;
  } else {
    *cp = invalid_cp;
    return 1;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) return 0;  // incomplete: wait for more bytes
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      *cp = invalid_cp;
      return 1;
    }
    c = (c << 6) | (b & 0x3F);
  }
  *cp = c;
  return len;
}

void char_set::finish() {
  ascii[0] = ascii[1] = 0;
  for (char32_t c = 0; c < 128; ++c)
    if (matches_slow(c)) ascii[c >> 6] |= uint64_t{1} << (c & 63);
}

bool char_set::matches_slow(char32_t c) const {
  if (wild || c == invalid_cp) return true;
  bool in = false;
  for (const auto& [lo, hi] : ranges) {
    if (c >= lo && c <= hi) {
      in = true;
      break;
    }
  }
  return in != negate;
}

namespace {

struct flags {
  bool icase = false;
  bool dotall = false;
  bool multiline = false;
};

// The parsed pattern; compiled to NFA nodes afterwards so that counted repetition can copy it.
struct re_node {
  enum kind_t { empty, chars, cat, alt, repeat, assert_ } kind = empty;
  int set = -1;
  assertion what = assertion::word;
  int min = 0, max = -1;  // repeat; max -1 = unbounded
  std::vector<std::unique_ptr<re_node>> kids;
};
using node_ptr = std::unique_ptr<re_node>;

struct parse_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void add_case_folds(char_set& s) {
  bool letters = false;
  std::vector<std::pair<char32_t, char32_t>> extra;
  for (char32_t c = 'A'; c <= 'Z'; ++c) {
    const char32_t l = c + 32;
    const bool up = s.matches_slow(c) && !s.negate, lo = s.matches_slow(l) && !s.negate;
    if (up || lo) letters = true;
    if (up) extra.push_back({l, l});
    if (lo) extra.push_back({c, c});
  }
  if (s.negate) {
    // A negated folded set: dropping the other case of excluded letters only widens it, and
    // non-ASCII code points are already included. Widen by removing letters from the exclusion.
    std::vector<std::pair<char32_t, char32_t>> kept;
    for (auto [lo, hi] : s.ranges) {
      for (char32_t c = lo; c <= hi && c < 0x80; ++c) {
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!letter) kept.push_back({c, c});
      }
      if (hi >= 0x80) kept.push_back({std::max<char32_t>(lo, 0x80), hi});
    }
    s.ranges = std::move(kept);
    return;
  }
  for (const auto& r : extra) s.ranges.push_back(r);
  // Unicode folding maps some non-ASCII letters to ASCII ones (KELVIN SIGN, long s), and
  // non-ASCII letters to each other: match any non-ASCII code point, a safe over-approximation.
  bool non_ascii = false;
  for (const auto& [lo, hi] : s.ranges) non_ascii |= hi >= 0x80;
  if (letters || non_ascii) s.ranges.push_back({0x80, 0x10FFFF});
}

class parser {
 public:
  parser(std::string_view pattern, std::vector<char_set>& sets) : p_(pattern), sets_(sets) {}

  node_ptr parse() {
    flags f;
    auto n = parse_alt(f);
    if (i_ != p_.size()) throw parse_error("unbalanced ')'");
    return n;
  }

 private:
  bool more() const { return i_ < p_.size(); }
  char peek() const { return p_[i_]; }

  int add_set(char_set s, const flags& f) {
    if (f.icase) add_case_folds(s);
    sets_.push_back(std::move(s));
    return static_cast<int>(sets_.size() - 1);
  }
  node_ptr chars_node(char_set s, const flags& f) {
    auto n = std::make_unique<re_node>();
    n->kind = re_node::chars;
    n->set = add_set(std::move(s), f);
    return n;
  }
  node_ptr literal(char32_t c, const flags& f) {
    char_set s;
    s.ranges.push_back({c, c});
    return chars_node(std::move(s), f);
  }
  node_ptr assert_node(assertion a) {
    auto n = std::make_unique<re_node>();
    n->kind = re_node::assert_;
    n->what = a;
    return n;
  }

  node_ptr parse_alt(flags& f) {
    auto first = parse_cat(f);
    if (!more() || peek() != '|') return first;
    auto n = std::make_unique<re_node>();
    n->kind = re_node::alt;
    n->kids.push_back(std::move(first));
    while (more() && peek() == '|') {
      ++i_;
      n->kids.push_back(parse_cat(f));
    }
    return n;
  }

  node_ptr parse_cat(flags& f) {
    auto n = std::make_unique<re_node>();
    n->kind = re_node::cat;
    while (more() && peek() != '|' && peek() != ')') n->kids.push_back(parse_repeat(f));
    return n;
  }

  bool parse_count(int* min, int* max) {
    // {n}, {n,}, {n,m}; anything else leaves '{' a literal, as RE2 does.
    size_t j = i_ + 1;
    auto number = [&](int* out) {
      size_t start = j;
      long v = 0;
      while (j < p_.size() && p_[j] >= '0' && p_[j] <= '9' && j - start < 5) v = v * 10 + (p_[j++] - '0');
      *out = static_cast<int>(v);
      return j > start;
    };
    if (!number(min)) return false;
    *max = *min;
    if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (j < p_.size() && p_[j] == '}') {
        *max = -1;
      } else if (!number(max)) {
        return false;
      }
    }
    if (j >= p_.size() || p_[j] != '}') return false;
    if (*min > 1000 || (*max != -1 && (*max > 1000 || *max < *min))) throw parse_error("bad repeat");
    i_ = j + 1;
    return true;
  }

  node_ptr parse_repeat(flags& f) {
    auto atom = parse_atom(f);
    while (more()) {
      int min = 0, max = -1;
      const char c = peek();
      if (c == '*') {
        ++i_;
      } else if (c == '+') {
        min = 1;
        ++i_;
      } else if (c == '?') {
        max = 1;
        ++i_;
      } else if (c == '{' && parse_count(&min, &max)) {
      } else {
        break;
      }
      if (more() && peek() == '?') ++i_;  // lazy: same language
      auto r = std::make_unique<re_node>();
      r->kind = re_node::repeat;
      r->min = min;
      r->max = max;
      r->kids.push_back(std::move(atom));
      atom = std::move(r);
    }
    return atom;
  }

  void parse_flags(flags& f) {
    bool on = true;
    while (more() && peek() != ')' && peek() != ':') {
      const char c = p_[i_++];
      if (c == '-') on = false;
      else if (c == 'i') f.icase = on;
      else if (c == 's') f.dotall = on;
      else if (c == 'm') f.multiline = on;
      else if (c == 'U') {}  // ungreedy: same language
      else throw parse_error("unknown flag");
    }
    if (!more()) throw parse_error("missing )");
  }

  node_ptr parse_group(flags& f) {
    ++i_;  // '('
    flags inner = f;
    if (more() && peek() == '?') {
      ++i_;
      if (more() && (peek() == 'P' || peek() == '<')) {
        const size_t close = p_.find('>', i_);
        if (close == std::string_view::npos) throw parse_error("bad group name");
        i_ = close + 1;
      } else {
        parse_flags(inner);
        if (peek() == ')') {  // (?i): applies to the rest of the enclosing group
          ++i_;
          f = inner;
          return std::make_unique<re_node>();
        }
        ++i_;  // ':'
      }
    }
    auto body = parse_alt(inner);
    if (!more() || peek() != ')') throw parse_error("missing )");
    ++i_;
    return body;
  }

  static void add_perl_class(char c, char_set& s) {
    switch (c) {
      case 'd': s.ranges.push_back({'0', '9'}); break;
      case 'w':
        s.ranges.push_back({'0', '9'});
        s.ranges.push_back({'A', 'Z'});
        s.ranges.push_back({'a', 'z'});
        s.ranges.push_back({'_', '_'});
        break;
      case 's':
        s.ranges.push_back({'\t', '\n'});
        s.ranges.push_back({'\f', '\r'});
        s.ranges.push_back({' ', ' '});
        break;
      default: break;
    }
  }

  char32_t parse_hex() {
    // After "\x": either {hex...} or two hex digits.
    auto hexval = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    char32_t v = 0;
    if (more() && peek() == '{') {
      ++i_;
      while (more() && peek() != '}') {
        const int h = hexval(p_[i_++]);
        if (h < 0) throw parse_error("bad \\x");
        v = v * 16 + h;
      }
      if (!more()) throw parse_error("bad \\x");
      ++i_;
      return v;
    }
    for (int k = 0; k < 2; ++k) {
      if (!more() || hexval(peek()) < 0) throw parse_error("bad \\x");
      v = v * 16 + hexval(p_[i_++]);
    }
    return v;
  }

  // A single escaped code point (literal escapes only); returns false if `c` is not one.
  bool escaped_literal(char c, char32_t* out) {
    switch (c) {
      case 'n': *out = '\n'; return true;
      case 't': *out = '\t'; return true;
      case 'r': *out = '\r'; return true;
      case 'f': *out = '\f'; return true;
      case 'v': *out = '\v'; return true;
      case 'a': *out = '\a'; return true;
      case 'x': *out = parse_hex(); return true;
      default: break;
    }
    if (c >= '0' && c <= '7') {
      char32_t v = c - '0';
      for (int k = 0; k < 2 && more() && peek() >= '0' && peek() <= '7'; ++k) v = v * 8 + (p_[i_++] - '0');
      *out = v;
      return true;
    }
    if (static_cast<unsigned char>(c) < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      *out = static_cast<unsigned char>(c);
      return true;
    }
    return false;
  }

  void skip_unicode_class() {
    // \pL or \p{Greek}: treated as a wildcard.
    if (more() && peek() == '{') {
      const size_t close = p_.find('}', i_);
      if (close == std::string_view::npos) throw parse_error("bad \\p");
      i_ = close + 1;
    } else if (more()) {
      ++i_;
    }
  }

  node_ptr parse_escape(flags& f) {
    ++i_;  // '\'
    if (!more()) throw parse_error("trailing \\");
    const char c = p_[i_++];
    switch (c) {
      case 'b': return assert_node(assertion::word);
      case 'B': return assert_node(assertion::not_word);
      case 'A': return assert_node(assertion::text_begin);
      case 'z': return assert_node(assertion::text_end);
      case 'd': case 'w': case 's': case 'D': case 'W': case 'S': {
        char_set s;
        add_perl_class(static_cast<char>(c | 0x20), s);
        s.negate = (c >= 'A' && c <= 'Z');
        return chars_node(std::move(s), f);
      }
      case 'p': case 'P': case 'C': {
        if (c != 'C') skip_unicode_class();
        char_set s;
        s.wild = true;
        return chars_node(std::move(s), f);
      }
      case 'Q': {
        auto n = std::make_unique<re_node>();
        n->kind = re_node::cat;
        const size_t end = p_.find("\\E", i_);
        const size_t stop = end == std::string_view::npos ? p_.size() : end;
        while (i_ < stop) {
          char32_t cp;
          size_t len = decode_utf8(p_, i_, &cp);
          if (len == 0) throw parse_error("bad UTF-8");
          i_ += len;
          n->kids.push_back(literal(cp, f));
        }
        i_ = end == std::string_view::npos ? p_.size() : end + 2;
        return n;
      }
      default: break;
    }
    char32_t lit;
    if (escaped_literal(c, &lit)) return literal(lit, f);
    throw parse_error("unknown escape");
  }

  node_ptr parse_class(const flags& f) {
    ++i_;  // '['
    char_set s;
    if (more() && peek() == '^') {
      s.negate = true;
      ++i_;
    }
    bool first = true;
    while (more() && (peek() != ']' || first)) {
      first = false;
      if (p_.substr(i_, 2) == "[:") {
        const size_t close = p_.find(":]", i_);
        if (close == std::string_view::npos) throw parse_error("bad [:class:]");
        i_ = close + 2;
        s.wild = true;
        continue;
      }
      char32_t lo;
      if (peek() == '\\') {
        ++i_;
        if (!more()) throw parse_error("trailing \\");
        const char c = p_[i_++];
        if (c == 'd' || c == 'w' || c == 's') {
          add_perl_class(c, s);
          continue;
        }
        if (c == 'D' || c == 'W' || c == 'S' || c == 'p' || c == 'P') {
          if (c == 'p' || c == 'P') skip_unicode_class();
          s.wild = true;  // a negated class inside a class: over-approximate
          continue;
        }
        if (!escaped_literal(c, &lo)) throw parse_error("unknown escape in class");
      } else {
        const size_t len = decode_utf8(p_, i_, &lo);
        if (len == 0) throw parse_error("bad UTF-8");
        i_ += len;
      }
      char32_t hi = lo;
      if (i_ + 1 < p_.size() && peek() == '-' && p_[i_ + 1] != ']') {
        ++i_;
        if (peek() == '\\') {
          ++i_;
          if (!more() || !escaped_literal(p_[i_++], &hi)) throw parse_error("bad range");
        } else {
          const size_t len = decode_utf8(p_, i_, &hi);
          if (len == 0) throw parse_error("bad UTF-8");
          i_ += len;
        }
        if (hi < lo) throw parse_error("bad range");
      }
      s.ranges.push_back({lo, hi});
    }
    if (!more()) throw parse_error("missing ]");
    ++i_;
    return chars_node(std::move(s), f);
  }

  node_ptr parse_atom(flags& f) {
    if (!more()) throw parse_error("missing atom");
    const char c = peek();
    switch (c) {
      case '(': return parse_group(f);
      case '[': return parse_class(f);
      case '\\': return parse_escape(f);
      case '*': case '+': case '?': throw parse_error("missing argument to repetition");
      case '.': {
        ++i_;
        char_set s;
        if (!f.dotall) {
          s.negate = true;
          s.ranges.push_back({'\n', '\n'});
        } else {
          s.wild = true;
        }
        sets_.push_back(std::move(s));  // no case folding for '.'
        auto n = std::make_unique<re_node>();
        n->kind = re_node::chars;
        n->set = static_cast<int>(sets_.size() - 1);
        return n;
      }
      case '^': ++i_; return assert_node(f.multiline ? assertion::line_begin : assertion::text_begin);
      case '$': ++i_; return assert_node(f.multiline ? assertion::line_end : assertion::text_end);
      default: break;
    }
    char32_t cp;
    const size_t len = decode_utf8(p_, i_, &cp);
    if (len == 0) throw parse_error("bad UTF-8");
    i_ += len;
    return literal(cp, f);
  }

  std::string_view p_;
  size_t i_ = 0;
  std::vector<char_set>& sets_;
};

constexpr size_t max_nodes = 200000;

}  // namespace

// Builds nodes by continuation: compile(n, next) returns the entry node of n whose exits lead to
// `next`. Counted repetition compiles the body once per copy.
struct nfa_builder {
  pattern_automaton& a;

  int add(nfa_node n) {
    if (a.nodes_.size() >= max_nodes) throw parse_error("pattern too large to analyse");
    a.nodes_.push_back(n);
    return static_cast<int>(a.nodes_.size() - 1);
  }

  int compile(const re_node& n, int next) {
    switch (n.kind) {
      case re_node::empty: return next;
      case re_node::chars: return add({nfa_op::chars, assertion::word, next, -1, n.set});
      case re_node::assert_: return add({nfa_op::assert_, n.what, next, -1, -1});
      case re_node::cat:
        for (auto it = n.kids.rbegin(); it != n.kids.rend(); ++it) next = compile(**it, next);
        return next;
      case re_node::alt: {
        int s = compile(*n.kids.back(), next);
        for (size_t k = n.kids.size() - 1; k-- > 0;) s = add({nfa_op::split, assertion::word, compile(*n.kids[k], next), s, -1});
        return s;
      }
      case re_node::repeat: {
        const re_node& body = *n.kids.front();
        int s = next;
        if (n.max < 0) {
          const int loop = add({nfa_op::split, assertion::word, -1, next, -1});
          a.nodes_[loop].out = compile(body, loop);
          s = loop;
        } else {
          for (int k = 0; k < n.max - n.min; ++k) s = add({nfa_op::split, assertion::word, compile(body, s), next, -1});
        }
        for (int k = 0; k < n.min; ++k) s = compile(body, s);
        return s;
      }
    }
    return next;
  }
};

std::shared_ptr<const pattern_automaton> pattern_automaton::build(
    const std::vector<std::string>& patterns, std::vector<std::string>* warnings) {
  auto a = std::make_shared<pattern_automaton>();
  a->patterns_ = patterns.size();
  nfa_builder b{*a};
  const int match = b.add({nfa_op::match, assertion::word, -1, -1, -1});
  int start = -1;
  for (const auto& p : patterns) {
    try {
      parser ps(p, a->sets_);
      auto tree = ps.parse();
      const int entry = b.compile(*tree, match);
      start = start < 0 ? entry : b.add({nfa_op::split, assertion::word, entry, start, -1});
    } catch (const parse_error& e) {
      a->opaque_ = true;
      if (warnings) warnings->push_back("pattern '" + p + "' cannot be analysed for streaming (" + e.what() +
                                        "): streamed answers are held until they end");
    }
  }
  a->start_ = start < 0 ? match : start;
  for (auto& set : a->sets_) set.finish();
  return a;
}

}  // namespace moat::policy
