// jinja_program.h — a parsed Jinja-subset template and its renderer.
//
//   auto prog = jinja::template_program::parse("{% for m in messages %}{{ m.content }}{% endfor %}");
//   jinja::value_dict vars = {{"messages", jinja::value::list({...})}};
//   std::string out = prog->render(vars);   // throws jinja::error (raise_exception, type errors)
//
// Supported: {{ }}, {% if/elif/else %}, {% for x[, y] in ... [if ...] %} with loop.* and {% else %},
// {% set %} (also ns.attr and block set), {% macro %}, break/continue, {% generation %};
// expressions with Python semantics; the filters, tests and methods listed in jinja_builtins.cpp;
// globals raise_exception, namespace, range, dict, strftime_now. Whitespace as transformers renders:
// trim_blocks and lstrip_blocks on, "-" and "+" markers honoured. Immutable after parse; render() is
// const and thread-safe (each call has its own scopes).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "engine/jinja_ast.h"
#include "engine/jinja_value.h"

namespace moat::engine::jinja {

class template_program {
 public:
  static std::shared_ptr<const template_program> parse(std::string_view source);
  // `globals` are the top-level variables; raise_exception, namespace, range, dict and
  // strftime_now are added unless given.
  std::string render(const value_dict& globals) const;

 private:
  stmt_list body_;
};

// Builtins (jinja_builtins.cpp), used by the evaluator.
value apply_filter(const std::string& name, const value& v, const call_args& args);
bool apply_test(const std::string& name, const value& v, const call_args& args);
// Methods of strings, dicts and lists ("  x ".strip(), d.items(), d.get(k)); nullopt when `obj` has
// no method of that name (then the attribute is looked up as an item instead).
std::optional<value> call_method(const value& obj, const std::string& name, const call_args& args);
// Iterates like Python: list items, dict keys, string characters; undefined is empty.
value_list iterate(const value& v);

}  // namespace moat::engine::jinja
