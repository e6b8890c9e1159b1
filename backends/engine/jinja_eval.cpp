// The tree-walking renderer: scopes (one per loop iteration and macro call, as Jinja scopes
// them), statement execution with break/continue, and expression evaluation.
#include <chrono>
#include <cmath>
#include <ctime>

#include "engine/jinja_program.h"
#include "engine/text_unicode.h"

namespace moat::engine::jinja {

namespace {

// Bounds that keep a hostile or buggy template from hanging or exhausting the process: the
// number of statements and loop iterations, macro recursion, and the size of the output.
constexpr int64_t max_steps = 250'000;
constexpr int max_macro_depth = 64;
constexpr size_t max_output_bytes = 64u << 20;
constexpr size_t max_value_bytes = 16u << 20;   // one string value
constexpr size_t max_list_items = 1u << 20;     // one list value

class evaluator {
 public:
  explicit evaluator(const value_dict& globals) { scopes_.push_back(value::dict(globals)); }

  enum class flow { normal, break_, continue_ };

  flow exec(const stmt_list& body, std::string& out) {
    for (const auto& s : body) {
      const flow f = exec_one(*s, out);
      if (f != flow::normal) return f;
    }
    return flow::normal;
  }

 private:
  [[noreturn]] void fail(int line, const std::string& what) const {
    throw error("line " + std::to_string(line) + ": " + what);
  }

  value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it)
      for (const auto& [k, v] : it->entries())
        if (k == name) return v;
    return value();
  }

  flow exec_one(const stmt& s, std::string& out) {
    if (++steps_ > max_steps) fail(s.line, "the template ran for too long (over 250000 steps)");
    if (out.size() > max_output_bytes) fail(s.line, "the template's output is too large");
    switch (s.type) {
      case stmt::kind::text: out += s.text; return flow::normal;
      case stmt::kind::output: out += eval(*s.value).to_string(); return flow::normal;
      case stmt::kind::if_:
        for (const auto& [cond, body] : s.branches)
          if (eval(*cond).truthy()) return exec(body, out);
        return exec(s.else_body, out);
      case stmt::kind::for_: return exec_for(s, out);
      case stmt::kind::set: {
        value v = eval(*s.value);
        assign(s, std::move(v));
        return flow::normal;
      }
      case stmt::kind::set_block: {
        std::string captured;
        exec(s.body, captured);
        assign(s, value(std::move(captured)));
        return flow::normal;
      }
      case stmt::kind::break_: return flow::break_;
      case stmt::kind::continue_: return flow::continue_;
      case stmt::kind::macro: define_macro(s); return flow::normal;
      case stmt::kind::call_block: fail(s.line, "call blocks are not supported");
    }
    return flow::normal;
  }

  void assign(const stmt& s, value v) {
    if (s.attr.empty()) {
      scopes_.back().set(s.text, std::move(v));
      return;
    }
    value target = lookup(s.text);
    if (target.type() != value::kind::ns) fail(s.line, "cannot set attribute '" + s.attr + "' of " + target.type_name());
    target.set(s.attr, std::move(v));
  }

  flow exec_for(const stmt& s, std::string& out) {
    value_list items = iterate(eval(*s.value));
    if (s.cond) {
      value_list kept;
      for (auto& item : items) {
        scopes_.push_back(value::dict());
        bind_targets(s, item);
        const bool keep = eval(*s.cond).truthy();
        scopes_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, out);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      if (++steps_ > max_steps) fail(s.line, "the template ran for too long (over 250000 steps)");
      // a fresh loop object per iteration: a template may keep a reference to it
      value_dict loop = {{"index", value(i + 1)}, {"index0", value(i)}, {"revindex", value(n - i)},
                         {"revindex0", value(n - i - 1)}, {"first", value(i == 0)}, {"last", value(i == n - 1)},
                         {"length", value(n)},
                         {"previtem", i > 0 ? items[i - 1] : value()},
                         {"nextitem", i + 1 < n ? items[i + 1] : value()},
                         {"cycle", value::callable([i](const call_args& a) {
                            if (a.positional.empty()) throw error("loop.cycle needs at least one value");
                            return a.positional[static_cast<size_t>(i) % a.positional.size()];
                          })}};
      scopes_.push_back(value::dict({{"loop", value::dict(std::move(loop))}}));
      bind_targets(s, items[i]);
      const flow f = exec(s.body, out);
      scopes_.pop_back();
      if (f == flow::break_) break;
    }
    return flow::normal;
  }

  void bind_targets(const stmt& s, const value& item) {
    if (s.targets.size() == 1) {
      scopes_.back().set(s.targets[0], item);
      return;
    }
    value_list parts = iterate(item);
    if (parts.size() != s.targets.size()) fail(s.line, "cannot unpack " + std::to_string(parts.size()) + " values");
    for (size_t k = 0; k < parts.size(); ++k) scopes_.back().set(s.targets[k], parts[k]);
  }

  void define_macro(const stmt& s) {
    const stmt* m = &s;
    scopes_.back().set(s.text, value::callable([this, m](const call_args& args) {
      if (macro_depth_ >= max_macro_depth) throw error("macro recursion too deep");
      ++macro_depth_;
      scopes_.push_back(value::dict());
      for (size_t k = 0; k < m->targets.size(); ++k) {
        const value* given = args.get(k, m->targets[k]);
        scopes_.back().set(m->targets[k], given ? *given : m->defaults[k] ? eval(*m->defaults[k]) : value());
      }
      std::string body;
      try {
        exec(m->body, body);
      } catch (...) {
        scopes_.pop_back();
        --macro_depth_;
        throw;
      }
      scopes_.pop_back();
      --macro_depth_;
      return value(std::move(body));
    }));
  }

  call_args eval_args(const expr& e) {
    call_args a;
    for (size_t k = 0; k < e.args.size(); ++k) {
      if (e.arg_names[k].empty()) a.positional.push_back(eval(*e.args[k]));
      else a.keywords.emplace_back(e.arg_names[k], eval(*e.args[k]));
    }
    return a;
  }

 public:
  value eval(const expr& e) {
    try {
      value v = eval_inner(e);
      // Values that double on every loop iteration would exhaust memory long before the step bound.
      if ((v.is_string() && v.as_string().size() > max_value_bytes) || (v.is_list() && v.items().size() > max_list_items))
        throw error("a value in the template grew too large");
      return v;
    } catch (const error& x) {
      const std::string what = x.what();
      if (what.starts_with("line ")) throw;
      fail(e.line, what);
    }
  }

 private:
  value eval_inner(const expr& e) {
    switch (e.type) {
      case expr::kind::literal: return e.lit;
      case expr::kind::name: return lookup(e.name);
      case expr::kind::list: {
        value_list items;
        for (const auto& x : e.args) items.push_back(eval(*x));
        return value::list(std::move(items));
      }
      case expr::kind::dict: {
        value d = value::dict();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) d.set(eval(*e.args[k]).to_string(), eval(*e.args[k + 1]));
        return d;
      }
      case expr::kind::attr: {
        value obj = eval(*e.a);
        return member(obj, value(e.name), e.a.get());
      }
      case expr::kind::index: {
        value obj = eval(*e.a);
        return member(obj, eval(*e.b), e.a.get());
      }
      case expr::kind::slice: return slice(eval(*e.a), e);
      case expr::kind::call: return call(e);
      case expr::kind::filter: return apply_filter(e.name, eval(*e.a), eval_args(e));
      case expr::kind::test: {
        const bool r = apply_test(e.name, eval(*e.a), eval_args(e));
        return value(e.negated ? !r : r);
      }
      case expr::kind::unary: {
        value v = eval(*e.a);
        if (e.name == "not") return value(!v.truthy());
        if (!v.is_number() && v.type() != value::kind::boolean) throw error("bad operand type for unary " + e.name + ": " + v.type_name());
        if (e.name == "+") return v;
        if (v.type() == value::kind::floating) return value(-v.as_double());
        return value(-v.as_int());
      }
      case expr::kind::binary: return binary(e);
      case expr::kind::ternary: {
        if (eval(*e.a).truthy()) return eval(*e.args[0]);
        return e.args[1] ? eval(*e.args[1]) : value();
      }
    }
    return value();
  }

  static std::string describe(const expr* source) {
    if (source && source->type == expr::kind::name) return "'" + source->name + "'";
    return "value";
  }

  value member(const value& obj, const value& key, const expr* source) {
    switch (obj.type()) {
      case value::kind::undefined: throw error(describe(source) + " is undefined");
      case value::kind::dict:
      case value::kind::ns: return obj.get(key.to_string());
      case value::kind::list: {
        if (!key.is_number() && key.type() != value::kind::boolean) {
          if (key.is_string() && !key.as_string().empty() && std::isdigit(static_cast<unsigned char>(key.as_string()[0])))
            return member(obj, value(static_cast<int64_t>(std::stoll(key.as_string()))), source);
          return value();
        }
        int64_t i = key.as_int();
        const int64_t n = static_cast<int64_t>(obj.items().size());
        if (i < 0) i += n;
        return i >= 0 && i < n ? obj.items()[i] : value();
      }
      case value::kind::string: {
        if (!key.is_number()) return value();
        value_list chars = iterate(obj);
        int64_t i = key.as_int();
        const int64_t n = static_cast<int64_t>(chars.size());
        if (i < 0) i += n;
        return i >= 0 && i < n ? chars[i] : value();
      }
      default: return value();
    }
  }

  value slice(const value& obj, const expr& e) {
    value_list seq = iterate(obj);
    const int64_t n = static_cast<int64_t>(seq.size());
    auto arg = [&](int k) -> std::optional<int64_t> {
      if (!e.args[k]) return std::nullopt;
      value v = eval(*e.args[k]);
      if (v.is_none()) return std::nullopt;
      return v.as_int();
    };
    const int64_t step = arg(2).value_or(1);
    if (step == 0) throw error("slice step cannot be zero");
    auto clamp = [&](std::optional<int64_t> x, int64_t dflt) {
      if (!x) return dflt;
      int64_t v = *x < 0 ? *x + n : *x;
      if (step > 0) return std::clamp<int64_t>(v, 0, n);
      return std::clamp<int64_t>(v, -1, n - 1);
    };
    const int64_t start = clamp(arg(0), step > 0 ? 0 : n - 1), stop = clamp(arg(1), step > 0 ? n : -1);
    value_list out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(seq[i]);
    if (obj.is_string()) {
      std::string s;
      for (const auto& c : out) s += c.as_string();
      return value(std::move(s));
    }
    return value::list(std::move(out));
  }

  value call(const expr& e) {
    if (e.a->type == expr::kind::attr) {
      value obj = eval(*e.a->a);
      if (obj.is_undefined()) throw error(describe(e.a->a.get()) + " is undefined");
      call_args args = eval_args(e);
      if (auto r = call_method(obj, e.a->name, args)) return *r;
      value f = obj.get(e.a->name);
      if (f.type() != value::kind::callable) throw error("'" + obj.type_name() + "' object has no method '" + e.a->name + "'");
      return f.as_function()(args);
    }
    value f = eval(*e.a);
    if (f.is_undefined()) throw error(describe(e.a.get()) + " is undefined");
    return f.as_function()(eval_args(e));
  }

  value binary(const expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      value l = eval(*e.a);
      return l.truthy() ? eval(*e.b) : l;
    }
    if (op == "or") {
      value l = eval(*e.a);
      return l.truthy() ? l : eval(*e.b);
    }
    value l = eval(*e.a), r = eval(*e.b);
    if (op == "==") return value(l.equals(r));
    if (op == "!=") return value(!l.equals(r));
    if (op == "<") return value(l.compare(r) < 0);
    if (op == ">") return value(l.compare(r) > 0);
    if (op == "<=") return value(l.compare(r) <= 0);
    if (op == ">=") return value(l.compare(r) >= 0);
    if (op == "in" || op == "not in") {
      bool found = false;
      if (r.is_string()) {
        if (!l.is_string()) throw error("'in <string>' requires string as left operand, not " + l.type_name());
        found = r.as_string().find(l.as_string()) != std::string::npos;
      } else if (r.is_mapping()) {
        found = !r.get(l.to_string()).is_undefined();
      } else if (r.is_list()) {
        for (const auto& x : r.items()) found = found || x.equals(l);
      } else if (!r.is_undefined()) {
        throw error("argument of type '" + r.type_name() + "' is not iterable");
      }
      return value(op == "in" ? found : !found);
    }
    if (op == "~") return value(l.to_string() + r.to_string());
    if (op == "+") {
      if (l.is_string() && r.is_string()) return value(l.as_string() + r.as_string());
      if (l.is_list() && r.is_list()) {
        value_list v = l.items();
        v.insert(v.end(), r.items().begin(), r.items().end());
        return value::list(std::move(v));
      }
    }
    if (op == "*" && l.is_string() && r.type() == value::kind::integer) {
      if (r.as_int() > 0 && !l.as_string().empty() &&
          static_cast<uint64_t>(r.as_int()) > max_value_bytes / l.as_string().size())
        throw error("a value in the template grew too large");
      std::string s;
      for (int64_t k = 0; k < r.as_int(); ++k) s += l.as_string();
      return value(std::move(s));
    }
    const bool numeric = (l.is_number() || l.type() == value::kind::boolean) && (r.is_number() || r.type() == value::kind::boolean);
    if (!numeric)
      throw error("unsupported operand type(s) for " + op + ": '" + l.type_name() + "' and '" + r.type_name() + "'");
    const bool ints = l.type() != value::kind::floating && r.type() != value::kind::floating;
    if (op == "/") {
      if (r.as_double() == 0) throw error("division by zero");
      return value(l.as_double() / r.as_double());
    }
    if (ints) {
      const int64_t a = l.as_int(), b = r.as_int();
      if (op == "+") return value(a + b);
      if (op == "-") return value(a - b);
      if (op == "*") return value(a * b);
      if (op == "//" || op == "%") {
        if (b == 0) throw error("integer division or modulo by zero");
        int64_t q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) --q, m += b;  // Python floors
        return value(op == "//" ? q : m);
      }
      if (op == "**" && b >= 0) {
        int64_t p = 1;
        for (int64_t k = 0; k < b; ++k) p *= a;
        return value(p);
      }
    }
    const double a = l.as_double(), b = r.as_double();
    if (op == "+") return value(a + b);
    if (op == "-") return value(a - b);
    if (op == "*") return value(a * b);
    if (op == "//") return value(std::floor(a / b));
    if (op == "%") return value(a - std::floor(a / b) * b);
    if (op == "**") return value(std::pow(a, b));
    throw error("unknown operator " + op);
  }

  std::vector<value> scopes_;
  int64_t steps_ = 0;
  int macro_depth_ = 0;
};

value strftime_now(const call_args& args) {
  const value* fmt = args.get(0, "format");
  if (!fmt || !fmt->is_string()) throw error("strftime_now needs a format string");
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[256];
  const size_t n = std::strftime(buf, sizeof buf, fmt->as_string().c_str(), &tm);
  return value(std::string(buf, n));
}

}  // namespace

std::shared_ptr<const template_program> template_program::parse(std::string_view source) {
  auto p = std::make_shared<template_program>();
  p->body_ = jinja::parse(lex(source));
  return p;
}

std::string template_program::render(const value_dict& globals) const {
  value_dict g = {
      {"raise_exception", value::callable([](const call_args& a) -> value {
         const value* m = a.get(0, "message");
         throw error(m ? m->to_string() : "raise_exception called");
       })},
      {"namespace", value::callable([](const call_args& a) {
         value ns = value::ns();
         if (!a.positional.empty() && a.positional[0].is_mapping())
           for (const auto& [k, v] : a.positional[0].entries()) ns.set(k, v);
         for (const auto& [k, v] : a.keywords) ns.set(k, v);
         return ns;
       })},
      {"dict", value::callable([](const call_args& a) {
         value d = value::dict();
         for (const auto& [k, v] : a.keywords) d.set(k, v);
         return d;
       })},
      {"range", value::callable([](const call_args& a) {
         int64_t start = 0, stop = 0, step = 1;
         if (a.positional.size() == 1) stop = a.positional[0].as_int();
         else if (a.positional.size() >= 2) start = a.positional[0].as_int(), stop = a.positional[1].as_int();
         if (a.positional.size() >= 3) step = a.positional[2].as_int();
         if (step == 0) throw error("range() arg 3 must not be zero");
         value_list out;
         for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
           out.push_back(value(i));
           if (out.size() > 1'000'000) throw error("range too large");
         }
         return value::list(std::move(out));
       })},
      {"strftime_now", value::callable(strftime_now)},
  };
  for (const auto& [k, v] : globals) {
    bool replaced = false;
    for (auto& [gk, gv] : g)
      if (gk == k) gv = v, replaced = true;
    if (!replaced) g.emplace_back(k, v);
  }
  evaluator ev(g);
  std::string out;
  ev.exec(body_, out);
  return out;
}

}  // namespace moat::engine::jinja
