// Filters, tests and methods of the Jinja subset: the ones chat templates in the wild use.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "engine/jinja_program.h"
#include "engine/text_unicode.h"

namespace moat::engine::jinja {

namespace {

bool is_py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string strip(const std::string& s, bool left, bool right, const value* chars) {
  auto drop = [&](char c) {
    if (chars && chars->is_string()) return chars->as_string().find(c) != std::string::npos;
    return is_py_space(c);
  };
  size_t b = 0, e = s.size();
  if (left) while (b < e && drop(s[b])) ++b;
  if (right) while (e > b && drop(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string ascii_case(std::string s, bool upper) {
  for (char& c : s)
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    else if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return s;
}

std::string title_case(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    const bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    if (alpha) c = start ? static_cast<char>(c & ~0x20) : static_cast<char>(c | 0x20);
    start = !alpha && !(c >= '0' && c <= '9');
  }
  return out;
}

std::string replace_str(const std::string& s, const std::string& from, const std::string& to, int64_t count = -1) {
  if (from.empty()) return s;
  std::string out;
  size_t pos = 0;
  for (int64_t done = 0; count < 0 || done < count; ++done) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  return out + s.substr(pos);
}

value split(const std::string& s, const value* sep, const value* maxsplit) {
  value_list parts;
  int64_t limit = maxsplit && !maxsplit->is_none() ? maxsplit->as_int() : -1;
  if (!sep || sep->is_none()) {  // whitespace runs, no empty parts
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && is_py_space(s[i])) ++i;
      if (i >= s.size()) break;
      if (limit == 0) {
        parts.push_back(value(strip(s.substr(i), false, true, nullptr)));
        break;
      }
      size_t j = i;
      while (j < s.size() && !is_py_space(s[j])) ++j;
      parts.push_back(value(s.substr(i, j - i)));
      --limit;
      i = j;
    }
    return value::list(std::move(parts));
  }
  const std::string& d = sep->as_string();
  if (d.empty()) throw error("empty separator");
  size_t pos = 0;
  while (limit != 0) {
    const size_t hit = s.find(d, pos);
    if (hit == std::string::npos) break;
    parts.push_back(value(s.substr(pos, hit - pos)));
    pos = hit + d.size();
    --limit;
  }
  parts.push_back(value(s.substr(pos)));
  return value::list(std::move(parts));
}

value attribute_of(const value& v, const std::string& path) {
  value cur = v;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    cur = cur.get(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

call_args rest_args(const call_args& a, size_t from) {
  call_args r;
  for (size_t k = from; k < a.positional.size(); ++k) r.positional.push_back(a.positional[k]);
  return r;
}

std::string arg_string(const call_args& a, size_t i, const char* name, const std::string& dflt) {
  const value* v = a.get(i, name);
  return v && !v->is_undefined() ? v->to_string() : dflt;
}

value_list sorted(value_list items, bool reverse, const std::string& attribute) {
  std::stable_sort(items.begin(), items.end(), [&](const value& x, const value& y) {
    const value a = attribute.empty() ? x : attribute_of(x, attribute);
    const value b = attribute.empty() ? y : attribute_of(y, attribute);
    return reverse ? b.compare(a) < 0 : a.compare(b) < 0;
  });
  return items;
}

// json.dumps(ensure_ascii=True): every non-ASCII code point as \\uXXXX (surrogate pairs above
// U+FFFF). Non-ASCII only occurs inside JSON strings, so the whole text can be rewritten.
std::string ascii_escape(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  char buf[16];
  for (size_t i = 0; i < json.size();) {
    const size_t n = utf8_char_length(json, i);
    const char32_t cp = utf8_decode_at(json, i);
    i += n;
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
      continue;
    }
    auto unit = [&](unsigned u) {
      std::snprintf(buf, sizeof buf, "\\u%04x", u & 0xFFFFu);
      out += buf;
    };
    if (cp < 0x10000) {
      unit(static_cast<unsigned>(cp));
    } else {
      const unsigned c = static_cast<unsigned>(cp) - 0x10000;
      unit(0xD800 + (c >> 10));
      unit(0xDC00 + (c & 0x3FF));
    }
  }
  return out;
}

}  // namespace

value_list iterate(const value& v) {
  switch (v.type()) {
    case value::kind::undefined: return {};
    case value::kind::list: return v.items();
    case value::kind::dict:
    case value::kind::ns: {
      value_list keys;
      for (const auto& [k, x] : v.entries()) keys.push_back(value(k));
      return keys;
    }
    case value::kind::string: {
      value_list chars;
      const std::string& s = v.as_string();
      for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_char_length(s, i);
        chars.push_back(value(s.substr(i, n)));
        i += n;
      }
      return chars;
    }
    default: throw error("'" + v.type_name() + "' object is not iterable");
  }
}

std::optional<value> call_method(const value& obj, const std::string& name, const call_args& a) {
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    if (name == "strip") return value(strip(s, true, true, a.get(0, "chars")));
    if (name == "lstrip") return value(strip(s, true, false, a.get(0, "chars")));
    if (name == "rstrip") return value(strip(s, false, true, a.get(0, "chars")));
    if (name == "upper") return value(ascii_case(s, true));
    if (name == "lower") return value(ascii_case(s, false));
    if (name == "title") return value(title_case(s));
    if (name == "capitalize") return value(ascii_case(s.substr(0, 1), true) + ascii_case(s.substr(std::min<size_t>(1, s.size())), false));
    if (name == "startswith" || name == "endswith") {
      const value* p = a.get(0, "prefix");
      if (!p) throw error(name + "() takes at least 1 argument");
      value_list options = p->is_list() ? p->items() : value_list{*p};
      for (const auto& o : options) {
        const std::string& x = o.as_string();
        if (name == "startswith" ? s.starts_with(x) : s.ends_with(x)) return value(true);
      }
      return value(false);
    }
    if (name == "split") return split(s, a.get(0, "sep"), a.get(1, "maxsplit"));
    if (name == "replace") {
      const value* c = a.get(2, "count");
      return value(replace_str(s, arg_string(a, 0, "old", ""), arg_string(a, 1, "new", ""), c ? c->as_int() : -1));
    }
    if (name == "find") {
      const size_t hit = s.find(arg_string(a, 0, "sub", ""));
      return value(hit == std::string::npos ? int64_t{-1} : static_cast<int64_t>(hit));
    }
    if (name == "count") {
      const std::string sub = arg_string(a, 0, "sub", "");
      int64_t n = 0;
      for (size_t p = s.find(sub); !sub.empty() && p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return value(n);
    }
    if (name == "join") {
      const value* items = a.get(0, "iterable");
      std::string out;
      bool first = true;
      for (const auto& x : iterate(items ? *items : value())) out += (first ? "" : s) + x.to_string(), first = false;
      return value(out);
    }
    if (name == "isdigit" || name == "isalpha" || name == "isspace") {
      bool ok = !s.empty();
      for (char c : s)
        ok = ok && (name == "isdigit" ? (c >= '0' && c <= '9') : name == "isspace" ? is_py_space(c) : ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'));
      return value(ok);
    }
    return std::nullopt;
  }
  if (obj.is_mapping()) {
    if (name == "items") {
      value_list out;
      for (const auto& [k, v] : obj.entries()) out.push_back(value::list({value(k), v}));
      return value::list(std::move(out));
    }
    if (name == "keys" || name == "values") {
      value_list out;
      for (const auto& [k, v] : obj.entries()) out.push_back(name == "keys" ? value(k) : v);
      return value::list(std::move(out));
    }
    if (name == "get") {
      const value* k = a.get(0, "key");
      value v = k ? obj.get(k->to_string()) : value();
      if (v.is_undefined()) {
        const value* d = a.get(1, "default");
        return d ? *d : value::none();
      }
      return v;
    }
    return std::nullopt;
  }
  if (obj.is_list()) {
    if (name == "append") {
      if (a.positional.empty()) throw error("append() takes exactly one argument");
      obj.items().push_back(a.positional[0]);
      return value::none();
    }
    if (name == "pop") {
      auto& items = obj.items();
      if (items.empty()) throw error("pop from empty list");
      int64_t i = a.positional.empty() ? -1 : a.positional[0].as_int();
      if (i < 0) i += static_cast<int64_t>(items.size());
      if (i < 0 || i >= static_cast<int64_t>(items.size())) throw error("pop index out of range");
      value v = items[i];
      items.erase(items.begin() + i);
      return v;
    }
    if (name == "index") {
      const auto& items = obj.items();
      for (size_t i = 0; i < items.size(); ++i)
        if (!a.positional.empty() && items[i].equals(a.positional[0])) return value(static_cast<int64_t>(i));
      throw error("value is not in list");
    }
  }
  return std::nullopt;
}

bool apply_test(const std::string& name, const value& v, const call_args& a) {
  const value* arg = a.get(0, "value");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.type() == value::kind::integer;
  if (name == "float") return v.type() == value::kind::floating;
  if (name == "boolean") return v.type() == value::kind::boolean;
  if (name == "true") return v.type() == value::kind::boolean && v.as_bool();
  if (name == "false") return v.type() == value::kind::boolean && !v.as_bool();
  if (name == "mapping") return v.is_mapping();
  if (name == "iterable") return v.is_list() || v.is_mapping() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_mapping() || v.is_string();
  if (name == "callable") return v.type() == value::kind::callable;
  if (name == "odd" || name == "even") return (v.as_int() % 2 != 0) == (name == "odd");
  if (name == "divisibleby") return arg && arg->as_int() != 0 && v.as_int() % arg->as_int() == 0;
  if (!arg) throw error("test '" + name + "' needs an argument");
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return v.equals(*arg);
  if (name == "ne" || name == "!=") return !v.equals(*arg);
  if (name == "lt" || name == "lessthan" || name == "<") return v.compare(*arg) < 0;
  if (name == "le" || name == "<=") return v.compare(*arg) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return v.compare(*arg) > 0;
  if (name == "ge" || name == ">=") return v.compare(*arg) >= 0;
  if (name == "in") {
    if (arg->is_string()) return v.is_string() && arg->as_string().find(v.as_string()) != std::string::npos;
    for (const auto& x : iterate(*arg))
      if (x.equals(v)) return true;
    return false;
  }
  throw error("no test named '" + name + "'");
}

value apply_filter(const std::string& name, const value& v, const call_args& a) {
  if (name == "default" || name == "d") {
    const value* dflt = a.get(0, "default_value");
    const value* boolean = a.get(1, "boolean");
    const bool use = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
    return use ? (dflt ? *dflt : value("")) : v;
  }
  if (name == "trim") return value(strip(v.to_string(), true, true, a.get(0, "chars")));
  if (name == "upper") return value(ascii_case(v.to_string(), true));
  if (name == "lower") return value(ascii_case(v.to_string(), false));
  if (name == "title") return value(title_case(v.to_string()));
  if (name == "capitalize") return *call_method(value(v.to_string()), "capitalize", {});
  if (name == "string") return value(v.to_string());
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") return name == "safe" ? v : value(v.to_string());
  if (name == "length" || name == "count") {
    if (v.is_mapping()) return value(static_cast<int64_t>(v.entries().size()));
    return value(static_cast<int64_t>(iterate(v).size()));
  }
  if (name == "list") return value::list(iterate(v));
  if (name == "first" || name == "last") {
    value_list items = iterate(v);
    if (items.empty()) return value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    value_list items = iterate(v);
    std::reverse(items.begin(), items.end());
    if (v.is_string()) {
      std::string s;
      for (const auto& c : items) s += c.as_string();
      return value(s);
    }
    return value::list(std::move(items));
  }
  if (name == "join") {
    const std::string sep = arg_string(a, 0, "d", "");
    const value* attr = a.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v)) {
      out += (first ? "" : sep) + (attr ? attribute_of(x, attr->to_string()) : x).to_string();
      first = false;
    }
    return value(out);
  }
  if (name == "tojson") {
    // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    const value* ensure_ascii = a.get(0, "ensure_ascii");
    const value* indent = a.get(1, "indent");
    const value* sort_keys = a.get(3, "sort_keys");
    std::optional<int> ind;
    if (indent && !indent->is_none()) ind = static_cast<int>(indent->as_int());
    std::string json = v.to_json(ind, sort_keys && sort_keys->truthy());
    return value(ensure_ascii && ensure_ascii->truthy() ? ascii_escape(json) : json);
  }
  if (name == "items") {
    if (!v.is_mapping()) throw error("items filter needs a mapping");
    return *call_method(v, "items", {});
  }
  if (name == "dictsort") {
    value_list pairs = call_method(v, "items", {})->items();
    return value::list(sorted(std::move(pairs), false, ""));
  }
  if (name == "sort") {
    const value* reverse = a.get(0, "reverse");
    const value* attr = a.get(2, "attribute");
    return value::list(sorted(iterate(v), reverse && reverse->truthy(), attr ? attr->to_string() : ""));
  }
  if (name == "unique") {
    value_list out;
    for (const auto& x : iterate(v))
      if (std::none_of(out.begin(), out.end(), [&](const value& y) { return y.equals(x); })) out.push_back(x);
    return value::list(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr") {
    const bool keep_if = name == "selectattr";
    const std::string attr = arg_string(a, 0, "attr", "");
    const value* test = a.get(1, "test");
    value_list out;
    for (const auto& x : iterate(v)) {
      const value field = attribute_of(x, attr);
      const bool ok = test ? apply_test(test->to_string(), field, rest_args(a, 2)) : field.truthy();
      if (ok == keep_if) out.push_back(x);
    }
    return value::list(std::move(out));
  }
  if (name == "select" || name == "reject") {
    const bool keep_if = name == "select";
    const value* test = a.get(0, "test");
    value_list out;
    for (const auto& x : iterate(v)) {
      const bool ok = test ? apply_test(test->to_string(), x, rest_args(a, 1)) : x.truthy();
      if (ok == keep_if) out.push_back(x);
    }
    return value::list(std::move(out));
  }
  if (name == "map") {
    const value* attr = a.get(99, "attribute");
    value_list out;
    for (const auto& x : iterate(v)) {
      if (attr) {
        value f = attribute_of(x, attr->to_string());
        const value* dflt = a.get(99, "default");
        out.push_back(f.is_undefined() && dflt ? *dflt : f);
      } else {
        if (a.positional.empty()) throw error("map needs a filter name or attribute=");
        out.push_back(apply_filter(a.positional[0].to_string(), x, rest_args(a, 1)));
      }
    }
    return value::list(std::move(out));
  }
  if (name == "replace") {
    const value* c = a.get(2, "count");
    return value(replace_str(v.to_string(), arg_string(a, 0, "old", ""), arg_string(a, 1, "new", ""), c ? c->as_int() : -1));
  }
  if (name == "int") {
    if (v.is_number() || v.type() == value::kind::boolean) return value(static_cast<int64_t>(v.as_double()));
    try {
      return value(static_cast<int64_t>(std::stoll(v.to_string())));
    } catch (const std::exception&) {
      const value* d = a.get(0, "default");
      return d ? *d : value(int64_t{0});
    }
  }
  if (name == "float") {
    if (v.is_number()) return value(v.as_double());
    try {
      return value(std::stod(v.to_string()));
    } catch (const std::exception&) {
      return value(0.0);
    }
  }
  if (name == "abs") return v.type() == value::kind::floating ? value(std::fabs(v.as_double())) : value(static_cast<int64_t>(std::llabs(v.as_int())));
  if (name == "round") {
    const value* precision = a.get(0, "precision");
    const double scale = std::pow(10.0, precision ? static_cast<double>(precision->as_int()) : 0.0);
    return value(std::round(v.as_double() * scale) / scale);
  }
  if (name == "sum") {
    double total = 0;
    bool all_int = true;
    for (const auto& x : iterate(v)) total += x.as_double(), all_int = all_int && x.type() != value::kind::floating;
    return all_int ? value(static_cast<int64_t>(total)) : value(total);
  }
  if (name == "min" || name == "max") {
    value_list items = iterate(v);
    if (items.empty()) return value();
    value best = items[0];
    for (const auto& x : items)
      if (name == "min" ? x.compare(best) < 0 : x.compare(best) > 0) best = x;
    return best;
  }
  if (name == "indent") {
    const value* width = a.get(0, "width");
    const value* first = a.get(1, "first");
    const std::string pad(width ? static_cast<size_t>(width->as_int()) : 4, ' ');
    const std::string s = v.to_string();
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      out += s[i];
      if (s[i] == '\n' && i + 1 < s.size() && s[i + 1] != '\n') out += pad;
    }
    return value(first && first->truthy() ? pad + out : out);
  }
  if (name == "wordcount") return value(static_cast<int64_t>(split(v.to_string(), nullptr, nullptr).items().size()));
  throw error("no filter named '" + name + "'");
}

}  // namespace moat::engine::jinja
