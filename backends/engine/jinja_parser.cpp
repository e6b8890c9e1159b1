// Recursive-descent parser for the Jinja subset. Operator precedence follows Jinja2's parser:
// ternary < or < and < not < comparisons/in < ~ < + - < * / // % < ** < unary < postfix
// (attribute, subscript, call, |filter, is test).
#include <algorithm>
#include <set>

#include "engine/jinja_ast.h"

namespace moat::engine::jinja {

namespace {

using tk = token::kind;

class parser {
 public:
  explicit parser(const std::vector<token>& t) : t_(t) {}

  stmt_list parse_all() {
    std::string end;
    stmt_list body = parse_body({}, end);
    if (!end.empty()) throw err("unexpected {% " + end + " %}");
    return body;
  }

 private:
  const token& peek(size_t k = 0) const { return t_[std::min(pos_ + k, t_.size() - 1)]; }
  const token& next() { return t_[std::min(pos_++, t_.size() - 1)]; }
  bool at_op(std::string_view op, size_t k = 0) const { return peek(k).type == tk::op && peek(k).text == op; }
  bool at_name(std::string_view n, size_t k = 0) const { return peek(k).type == tk::name && peek(k).text == n; }
  error err(const std::string& what) const { return error("line " + std::to_string(peek().line) + ": " + what); }
  void expect_op(std::string_view op) {
    if (!at_op(op)) throw err("expected '" + std::string(op) + "'" + got());
    ++pos_;
  }
  void expect_name(std::string_view n) {
    if (!at_name(n)) throw err("expected '" + std::string(n) + "'" + got());
    ++pos_;
  }
  std::string got() const {
    const token& k = peek();
    if (k.type == tk::eof) return ", got the end of the template";
    if (k.type == tk::block_end) return ", got '%}'";
    if (k.type == tk::var_end) return ", got '}}'";
    return ", got '" + k.text + "'";
  }
  std::string take_name() {
    if (peek().type != tk::name) throw err("expected a name" + got());
    return next().text;
  }
  void expect(tk type, const char* what) {
    if (peek().type != type) throw err(std::string("expected ") + what + got());
    ++pos_;
  }

  // Statements until one of `ends` opens a block tag; `end` receives which (the tag is consumed
  // up to its name; the caller parses the rest of that tag).
  stmt_list parse_body(const std::set<std::string>& ends, std::string& end) {
    stmt_list body;
    end.clear();
    while (peek().type != tk::eof) {
      const token& k = peek();
      if (k.type == tk::text) {
        auto s = make_stmt(stmt::kind::text);
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (k.type == tk::var_begin) {
        ++pos_;
        auto s = make_stmt(stmt::kind::output);
        s->value = parse_expr();
        expect(tk::var_end, "'}}'");
        body.push_back(std::move(s));
      } else if (k.type == tk::block_begin) {
        if (peek(1).type == tk::name && ends.count(peek(1).text)) {
          pos_ += 2;
          end = t_[pos_ - 1].text;
          return body;
        }
        ++pos_;
        parse_block(body);
      } else {
        throw err("unexpected token" + got());
      }
    }
    if (!ends.empty()) throw err("missing {% " + *ends.rbegin() + " %}");
    return body;
  }

  stmt_ptr make_stmt(stmt::kind k) const {
    auto s = std::make_unique<stmt>();
    s->type = k;
    s->line = peek().line;
    return s;
  }

  void end_tag() { expect(tk::block_end, "'%}'"); }

  void parse_block(stmt_list& body) {
    depth_guard guard(depth_, *this);
    const std::string kw = take_name();
    std::string end;
    if (kw == "if") {
      auto s = make_stmt(stmt::kind::if_);
      expr_ptr cond = parse_expr();
      end_tag();
      while (true) {
        stmt_list b = parse_body({"elif", "else", "endif"}, end);
        s->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "elif") {
          cond = parse_expr();
          end_tag();
          continue;
        }
        end_tag();
        if (end == "else") {
          s->else_body = parse_body({"endif"}, end);
          end_tag();
        }
        break;
      }
      body.push_back(std::move(s));
    } else if (kw == "for") {
      auto s = make_stmt(stmt::kind::for_);
      s->targets.push_back(take_name());
      while (at_op(",")) {
        ++pos_;
        s->targets.push_back(take_name());
      }
      expect_name("in");
      s->value = parse_or();
      if (at_name("if")) {
        ++pos_;
        s->cond = parse_or();
      }
      if (at_name("recursive")) throw err("recursive loops are not supported");
      end_tag();
      s->body = parse_body({"else", "endfor"}, end);
      end_tag();
      if (end == "else") {
        s->else_body = parse_body({"endfor"}, end);
        end_tag();
      }
      body.push_back(std::move(s));
    } else if (kw == "set") {
      auto s = make_stmt(stmt::kind::set);
      s->text = take_name();
      if (at_op(".")) {
        ++pos_;
        s->attr = take_name();
      }
      if (at_op(",")) throw err("tuple assignment in set is not supported");
      if (at_op("=")) {
        ++pos_;
        s->value = parse_expr();
        end_tag();
      } else {
        end_tag();
        s->type = stmt::kind::set_block;
        s->body = parse_body({"endset"}, end);
        end_tag();
      }
      body.push_back(std::move(s));
    } else if (kw == "break" || kw == "continue") {
      body.push_back(make_stmt(kw == "break" ? stmt::kind::break_ : stmt::kind::continue_));
      end_tag();
    } else if (kw == "macro") {
      auto s = make_stmt(stmt::kind::macro);
      s->text = take_name();
      expect_op("(");
      while (!at_op(")")) {
        s->targets.push_back(take_name());
        if (at_op("=")) {
          ++pos_;
          s->defaults.push_back(parse_expr());
        } else {
          s->defaults.push_back(nullptr);
        }
        if (!at_op(")")) expect_op(",");
      }
      ++pos_;
      end_tag();
      s->body = parse_body({"endmacro"}, end);
      end_tag();
      body.push_back(std::move(s));
    } else if (kw == "generation") {
      // transformers' {% generation %} marks assistant text for masks; it renders its body as is.
      end_tag();
      stmt_list inner = parse_body({"endgeneration"}, end);
      end_tag();
      for (auto& x : inner) body.push_back(std::move(x));
    } else {
      throw err("unknown tag '" + kw + "'");
    }
  }

  expr_ptr node(expr::kind k, int line) const {
    auto e = std::make_unique<expr>();
    e->type = k;
    e->line = line;
    return e;
  }
  expr_ptr deepen(expr_ptr e) const {
    int d = 0;
    for (const expr* c : {e->a.get(), e->b.get()})
      if (c) d = std::max(d, c->depth);
    for (const auto& c : e->args)
      if (c) d = std::max(d, c->depth);
    e->depth = d + 1;
    if (e->depth > 300) throw err("expression nested too deeply");
    return e;
  }

  expr_ptr binary(std::string op, expr_ptr a, expr_ptr b) const {
    auto e = node(expr::kind::binary, a->line);
    e->name = std::move(op);
    e->a = std::move(a);
    e->b = std::move(b);
    return deepen(std::move(e));
  }

  // Nesting is bounded so a pathological template fails with an error, not a stack overflow.
  struct depth_guard {
    int& d;
    depth_guard(int& depth, const parser& p) : d(depth) {
      if (++d > 200) throw p.err("expressions or blocks nested too deeply");
    }
    ~depth_guard() { --d; }
  };

  expr_ptr parse_expr() {
    depth_guard guard(depth_, *this);
    expr_ptr e = parse_or();
    if (at_name("if")) {
      ++pos_;
      auto t = node(expr::kind::ternary, e->line);
      t->a = parse_or();
      t->args.push_back(std::move(e));
      if (at_name("else")) {
        ++pos_;
        t->args.push_back(parse_expr());
      } else {
        t->args.push_back(nullptr);
      }
      return deepen(std::move(t));
    }
    return e;
  }

  expr_ptr parse_or() {
    expr_ptr e = parse_and();
    while (at_name("or")) {
      ++pos_;
      e = binary("or", std::move(e), parse_and());
    }
    return e;
  }

  expr_ptr parse_and() {
    expr_ptr e = parse_not();
    while (at_name("and")) {
      ++pos_;
      e = binary("and", std::move(e), parse_not());
    }
    return e;
  }

  expr_ptr parse_not() {
    depth_guard guard(depth_, *this);
    if (at_name("not")) {
      auto e = node(expr::kind::unary, peek().line);
      ++pos_;
      e->name = "not";
      e->a = parse_not();
      return deepen(std::move(e));
    }
    return parse_compare();
  }

  expr_ptr parse_compare() {
    expr_ptr e = parse_concat();
    while (true) {
      std::string op;
      if (peek().type == tk::op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                    peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (at_name("in")) {
        ++pos_;
        op = "in";
      } else if (at_name("not") && at_name("in", 1)) {
        pos_ += 2;
        op = "not in";
      } else {
        return e;
      }
      e = binary(op, std::move(e), parse_concat());
    }
  }

  expr_ptr parse_concat() {
    expr_ptr e = parse_math1();
    while (at_op("~")) {
      ++pos_;
      e = binary("~", std::move(e), parse_math1());
    }
    return e;
  }

  expr_ptr parse_math1() {
    expr_ptr e = parse_math2();
    while (at_op("+") || at_op("-")) {
      std::string op = next().text;
      e = binary(op, std::move(e), parse_math2());
    }
    return e;
  }

  expr_ptr parse_math2() {
    expr_ptr e = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      std::string op = next().text;
      e = binary(op, std::move(e), parse_pow());
    }
    return e;
  }

  expr_ptr parse_pow() {
    expr_ptr e = parse_unary();
    while (at_op("**")) {
      ++pos_;
      e = binary("**", std::move(e), parse_unary());
    }
    return e;
  }

  expr_ptr parse_unary() {
    depth_guard guard(depth_, *this);
    if (at_op("-") || at_op("+")) {
      auto e = node(expr::kind::unary, peek().line);
      e->name = next().text;
      e->a = parse_unary();
      return deepen(std::move(e));
    }
    return parse_postfix(parse_primary());
  }

  void parse_call_args(expr& e) {
    expect_op("(");
    while (!at_op(")")) {
      if (peek().type == tk::name && at_op("=", 1)) {
        e.arg_names.push_back(next().text);
        ++pos_;
      } else {
        e.arg_names.emplace_back();
      }
      e.args.push_back(parse_expr());
      if (!at_op(")")) expect_op(",");
    }
    ++pos_;
  }

  expr_ptr parse_postfix(expr_ptr e) {
    while (true) {
      const int line = peek().line;
      if (at_op(".")) {
        ++pos_;
        auto a = node(expr::kind::attr, line);
        a->name = peek().type == tk::integer ? next().text : take_name();
        a->a = std::move(e);
        e = deepen(std::move(a));
      } else if (at_op("[")) {
        ++pos_;
        e = parse_subscript(std::move(e), line);
      } else if (at_op("(")) {
        auto c = node(expr::kind::call, line);
        c->a = std::move(e);
        parse_call_args(*c);
        e = deepen(std::move(c));
      } else if (at_op("|")) {
        ++pos_;
        auto f = node(expr::kind::filter, line);
        f->name = take_name();
        f->a = std::move(e);
        if (at_op("(")) parse_call_args(*f);
        e = deepen(std::move(f));
      } else if (at_name("is")) {
        ++pos_;
        auto t = node(expr::kind::test, line);
        if (at_name("not")) {
          ++pos_;
          t->negated = true;
        }
        t->name = take_name();
        t->a = std::move(e);
        if (at_op("(")) {
          parse_call_args(*t);
        } else if (peek().type == tk::string || peek().type == tk::integer || peek().type == tk::floating ||
                   (peek().type == tk::name && !is_keyword(peek().text))) {
          t->args.push_back(parse_primary());
          t->arg_names.emplace_back();
        }
        e = deepen(std::move(t));
      } else {
        return e;
      }
    }
  }

  static bool is_keyword(const std::string& n) {
    return n == "and" || n == "or" || n == "not" || n == "if" || n == "else" || n == "in" || n == "is";
  }

  expr_ptr parse_subscript(expr_ptr target, int line) {
    expr_ptr first;
    if (!at_op(":")) first = parse_expr();
    if (at_op("]")) {
      ++pos_;
      auto i = node(expr::kind::index, line);
      i->a = std::move(target);
      i->b = std::move(first);
      return deepen(std::move(i));
    }
    auto s = node(expr::kind::slice, line);
    s->a = std::move(target);
    s->args.push_back(std::move(first));
    for (int part = 0; part < 2; ++part) {
      if (!at_op(":")) {
        s->args.push_back(nullptr);
        continue;
      }
      ++pos_;
      s->args.push_back(at_op(":") || at_op("]") ? nullptr : parse_expr());
    }
    expect_op("]");
    return deepen(std::move(s));
  }

  expr_ptr parse_primary() {
    const token& k = peek();
    const int line = k.line;
    if (k.type == tk::string) {
      auto e = node(expr::kind::literal, line);
      std::string s;
      while (peek().type == tk::string) s += next().text;  // adjacent literals concatenate
      e->lit = value(std::move(s));
      return e;
    }
    if (k.type == tk::integer || k.type == tk::floating) {
      auto e = node(expr::kind::literal, line);
      const std::string text = next().text;
      if (k.type == tk::integer) e->lit = value(static_cast<int64_t>(std::stoll(text)));
      else e->lit = value(std::stod(text));
      return e;
    }
    if (k.type == tk::name) {
      const std::string n = next().text;
      auto e = node(expr::kind::literal, line);
      if (n == "true" || n == "True") e->lit = value(true);
      else if (n == "false" || n == "False") e->lit = value(false);
      else if (n == "none" || n == "None") e->lit = value::none();
      else {
        e->type = expr::kind::name;
        e->name = n;
      }
      return e;
    }
    if (at_op("(")) {
      ++pos_;
      expr_ptr e = parse_expr();
      if (at_op(",")) {  // a tuple: evaluated as a list
        auto l = node(expr::kind::list, line);
        l->args.push_back(std::move(e));
        while (at_op(",")) {
          ++pos_;
          if (at_op(")")) break;
          l->args.push_back(parse_expr());
        }
        e = deepen(std::move(l));
      }
      expect_op(")");
      return e;
    }
    if (at_op("[")) {
      ++pos_;
      auto l = node(expr::kind::list, line);
      while (!at_op("]")) {
        l->args.push_back(parse_expr());
        if (!at_op("]")) expect_op(",");
      }
      ++pos_;
      return deepen(std::move(l));
    }
    if (at_op("{")) {
      ++pos_;
      auto d = node(expr::kind::dict, line);
      while (!at_op("}")) {
        d->args.push_back(parse_expr());
        expect_op(":");
        d->args.push_back(parse_expr());
        if (!at_op("}")) expect_op(",");
      }
      ++pos_;
      return deepen(std::move(d));
    }
    throw err("expected an expression" + got());
  }

  const std::vector<token>& t_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

stmt_list parse(const std::vector<token>& tokens) { return parser(tokens).parse_all(); }

}  // namespace moat::engine::jinja
