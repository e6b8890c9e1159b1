#include "engine/jinja_lexer.h"

#include <cctype>

#include "engine/jinja_value.h"
#include "engine/text_unicode.h"

namespace moat::engine::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class lexer {
 public:
  explicit lexer(std::string_view src) : src_(src) {}

  std::vector<token> run() {
    size_t pos = 0;
    enum class strip { none, one_newline, all } pending = strip::none;
    while (pos <= src_.size()) {
      const size_t tag = find_tag(pos);
      std::string text(src_.substr(pos, tag - pos));
      // leading whitespace control from the previous tag
      if (pending == strip::all) {
        size_t k = 0;
        while (k < text.size() && is_space(text[k])) ++k;
        text.erase(0, k);
      } else if (pending == strip::one_newline) {
        if (text.starts_with("\r\n")) text.erase(0, 2);
        else if (text.starts_with("\n")) text.erase(0, 1);
      }
      pending = strip::none;
      if (tag == src_.size()) {
        emit_text(text);
        break;
      }
      const char type = src_[tag + 1];  // '{', '%' or '#'
      const char marker = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (marker == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (type != '{' && marker != '+') {
        lstrip_block(text, pos, tag);
      }
      emit_text(text);
      size_t p = tag + 2 + ((marker == '-' || marker == '+') ? 1 : 0);
      line_at(tag);
      bool strip_after = false;
      if (type == '#') {
        const size_t end = src_.find("#}", p);
        if (end == std::string_view::npos) throw error(where() + "unterminated comment");
        strip_after = end > p && src_[end - 1] == '-';
        p = end + 2;
      } else {
        toks_.push_back({type == '{' ? token::kind::var_begin : token::kind::block_begin, "", line_});
        p = lex_tag(p, type == '{' ? '}' : '%', strip_after);
        toks_.push_back({type == '{' ? token::kind::var_end : token::kind::block_end, "", line_});
      }
      if (strip_after) pending = strip::all;
      else if (type != '{') pending = strip::one_newline;  // trim_blocks
      pos = p;
    }
    toks_.push_back({token::kind::eof, "", line_});
    return std::move(toks_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return src_.size();
  }

  // lstrip_blocks: spaces/tabs between the start of the line and a block tag are dropped.
  void lstrip_block(std::string& text, size_t chunk_start, size_t tag) const {
    size_t k = tag;
    while (k > 0 && (src_[k - 1] == ' ' || src_[k - 1] == '\t')) --k;
    if (!(k == 0 || src_[k - 1] == '\n')) return;
    (void)chunk_start;
    size_t n = tag - k;
    while (n > 0 && !text.empty() && (text.back() == ' ' || text.back() == '\t')) text.pop_back(), --n;
  }

  void emit_text(const std::string& text) {
    if (!text.empty()) toks_.push_back({token::kind::text, text, line_});
  }

  void line_at(size_t pos) {
    line_ = 1;
    for (size_t i = 0; i < pos; ++i) line_ += src_[i] == '\n';
  }
  std::string where() const { return "line " + std::to_string(line_) + ": "; }

  // Lexes expression tokens up to the closing "}}" or "%}"; returns the position after it.
  size_t lex_tag(size_t p, char close, bool& strip_after) {
    static const char* two_char[] = {"**", "//", "==", "!=", "<=", ">="};
    while (true) {
      while (p < src_.size() && is_space(src_[p])) line_ += src_[p++] == '\n';
      if (p >= src_.size()) throw error(where() + "unterminated tag");
      if (src_[p] == '-' && p + 2 < src_.size() && src_[p + 1] == close && src_[p + 2] == '}') {
        strip_after = true;
        return p + 3;
      }
      if (src_[p] == '+' && p + 2 < src_.size() && src_[p + 1] == close && src_[p + 2] == '}') return p + 3;
      if (src_[p] == close && p + 1 < src_.size() && src_[p + 1] == '}') return p + 2;
      const char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        toks_.push_back({token::kind::name, std::string(src_.substr(p, e - p)), line_});
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = p;
        while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        bool is_float = false;
        if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          is_float = true;
          ++e;
          while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        }
        toks_.push_back({is_float ? token::kind::floating : token::kind::integer, std::string(src_.substr(p, e - p)), line_});
        p = e;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        std::string_view op = src_.substr(p, 1);
        for (std::string_view t : two_char)
          if (src_.substr(p, 2) == t) op = t;
        if (std::string_view("+-*/%~<>()[]{}.,:|=!").find(c) == std::string_view::npos)
          throw error(where() + "unexpected character '" + std::string(1, c) + "'");
        toks_.push_back({token::kind::op, std::string(op), line_});
        p += op.size();
      }
    }
  }

  size_t lex_string(size_t p) {
    const char q = src_[p++];
    std::string s;
    while (p < src_.size() && src_[p] != q) {
      char c = src_[p++];
      if (c == '\n') ++line_;
      if (c == '\\' && p < src_.size()) {
        const char e = src_[p++];
        switch (e) {
          case 'n': s += '\n'; break;
          case 't': s += '\t'; break;
          case 'r': s += '\r'; break;
          case '\\': s += '\\'; break;
          case '\'': s += '\''; break;
          case '"': s += '"'; break;
          case '\n': break;  // line continuation
          case 'x':
          case 'u':
          case 'U': {  // \xNN, \uNNNN, \UNNNNNNNN as Python's unicode-escape reads them
            const size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            char32_t cp = 0;
            size_t k = 0;
            for (; k < digits && p + k < src_.size() && std::isxdigit(static_cast<unsigned char>(src_[p + k])); ++k)
              cp = cp * 16 + static_cast<char32_t>(std::stoi(std::string(1, src_[p + k]), nullptr, 16));
            if (k != digits || cp > 0x10FFFF) throw error(where() + "bad \\" + std::string(1, e) + " escape in a string");
            utf8_append(s, cp);
            p += digits;
            break;
          }
          default: s += '\\', s += e;  // Python keeps unknown escapes as written
        }
        continue;
      }
      s += c;
    }
    if (p >= src_.size()) throw error(where() + "unterminated string");
    toks_.push_back({token::kind::string, s, line_});
    return p + 1;
  }

  std::string_view src_;
  std::vector<token> toks_;
  int line_ = 1;
};

}  // namespace

std::vector<token> lex(std::string_view source) {
  // Jinja drops one trailing newline of the template (keep_trailing_newline=False).
  if (source.ends_with("\r\n")) source.remove_suffix(2);
  else if (source.ends_with("\n")) source.remove_suffix(1);
  return lexer(source).run();
}

}  // namespace moat::engine::jinja
