// jinja_lexer.h — splits a Jinja template into text and tag tokens, applying whitespace control
// the way transformers configures Jinja (trim_blocks=True, lstrip_blocks=True, and "-"/"+" markers).
//
//   std::vector<jinja::token> toks = jinja::lex("Hi {{ name | upper }}!");
//   // text "Hi ", var_begin, name "name", op "|", name "upper", var_end, text "!", eof
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moat::engine::jinja {

struct token {
  enum class kind { text, var_begin, var_end, block_begin, block_end, name, string, integer, floating, op, eof };
  kind type;
  std::string text;  // text, name, op spelling, unescaped string, number spelling
  int line;
};

// Throws jinja::error (with the line) for an unterminated tag, string or comment.
std::vector<token> lex(std::string_view source);

}  // namespace moat::engine::jinja
