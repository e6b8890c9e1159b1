// jinja_ast.h — the parsed form of a template: expression and statement nodes (internal to the
// Jinja-subset engine; built by jinja_parser.cpp, walked by jinja_eval.cpp).
//
//   std::vector<jinja::stmt_ptr> body = jinja::parse(jinja::lex(source));
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/jinja_lexer.h"
#include "engine/jinja_value.h"

namespace moat::engine::jinja {

struct expr;
using expr_ptr = std::unique_ptr<expr>;

struct expr {
  enum class kind {
    literal,   // lit
    name,      // name
    list,      // args: items
    dict,      // args: key, value, key, value, ...
    attr,      // a . name
    index,     // a [ b ]
    slice,     // a [ args[0] : args[1] : args[2] ] (null where omitted)
    call,      // a ( args ) with arg_names ("" for positional)
    filter,    // a | name ( args )
    test,      // a is [not] name ( args )
    unary,     // op a   ("-", "+", "not")
    binary,    // a op b (arithmetic, comparison, "in", "not in", "~", "and", "or")
    ternary,   // args[0] if a else args[1] (args[1] may be null)
  };
  kind type;
  int line = 0;
  int depth = 1;  // height of this subtree, bounded by the parser (the evaluator recurses on it)
  value lit;
  std::string name;  // name, attribute, filter/test name, or operator
  bool negated = false;  // test: "is not"
  expr_ptr a, b;
  std::vector<expr_ptr> args;
  std::vector<std::string> arg_names;
};

struct stmt;
using stmt_ptr = std::unique_ptr<stmt>;
using stmt_list = std::vector<stmt_ptr>;

struct stmt {
  enum class kind { text, output, if_, for_, set, set_block, break_, continue_, macro, call_block };
  kind type;
  int line = 0;
  std::string text;                  // text; set: the variable; macro: its name
  std::string attr;                  // set ns.attr: the attribute
  std::vector<std::string> targets;  // for: loop variables; macro: parameter names
  std::vector<expr_ptr> defaults;    // macro: default values (null where none)
  expr_ptr value;                    // output / set / for: the iterable / for: filter condition in cond
  expr_ptr cond;
  std::vector<std::pair<expr_ptr, stmt_list>> branches;  // if / elif
  stmt_list body, else_body;         // for / else, if: else, set_block, macro body
};

// Throws jinja::error naming the line for a syntax error or an unknown tag.
stmt_list parse(const std::vector<token>& tokens);

}  // namespace moat::engine::jinja
