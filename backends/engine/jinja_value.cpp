#include "engine/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace moat::engine::jinja {

const value* call_args::get(size_t index, std::string_view name) const {
  for (const auto& [k, v] : keywords)
    if (k == name) return &v;
  return index < positional.size() ? &positional[index] : nullptr;
}

value value::none() {
  value v;
  v.data_ = none_tag{};
  return v;
}

value value::list(value_list items) {
  value v;
  v.data_ = std::make_shared<value_list>(std::move(items));
  return v;
}

value value::dict(value_dict items) {
  value v;
  v.data_ = std::make_shared<dict_box>(dict_box{std::move(items), false});
  return v;
}

value value::ns(value_dict items) {
  value v;
  v.data_ = std::make_shared<dict_box>(dict_box{std::move(items), true});
  return v;
}

value value::callable(function f) {
  value v;
  v.data_ = std::make_shared<function>(std::move(f));
  return v;
}

value::kind value::type() const {
  switch (data_.index()) {
    case 0: return kind::undefined;
    case 1: return kind::none;
    case 2: return kind::boolean;
    case 3: return kind::integer;
    case 4: return kind::floating;
    case 5: return kind::string;
    case 6: return kind::list;
    case 7: return std::get<7>(data_)->is_namespace ? kind::ns : kind::dict;
    default: return kind::callable;
  }
}

std::string value::type_name() const {
  switch (type()) {
    case kind::undefined: return "undefined";
    case kind::none: return "NoneType";
    case kind::boolean: return "bool";
    case kind::integer: return "int";
    case kind::floating: return "float";
    case kind::string: return "str";
    case kind::list: return "list";
    case kind::dict: return "dict";
    case kind::ns: return "Namespace";
    case kind::callable: return "function";
  }
  return "?";
}

bool value::truthy() const {
  switch (type()) {
    case kind::undefined:
    case kind::none: return false;
    case kind::boolean: return as_bool();
    case kind::integer: return std::get<int64_t>(data_) != 0;
    case kind::floating: return std::get<double>(data_) != 0.0;
    case kind::string: return !std::get<std::string>(data_).empty();
    case kind::list: return !items().empty();
    case kind::dict: return !entries().empty();
    default: return true;
  }
}

int64_t value::as_int() const {
  if (type() == kind::integer) return std::get<int64_t>(data_);
  if (type() == kind::boolean) return as_bool() ? 1 : 0;
  throw error("expected an integer, got " + type_name());
}

double value::as_double() const {
  if (type() == kind::floating) return std::get<double>(data_);
  return static_cast<double>(as_int());
}

const std::string& value::as_string() const {
  if (type() != kind::string) throw error("expected a string, got " + type_name());
  return std::get<std::string>(data_);
}

value_list& value::items() const {
  if (type() != kind::list) throw error("expected a list, got " + type_name());
  return *std::get<6>(data_);
}

value_dict& value::entries() const {
  if (!is_mapping()) throw error("expected a mapping, got " + type_name());
  return std::get<7>(data_)->entries;
}

const function& value::as_function() const {
  if (type() != kind::callable) throw error("'" + type_name() + "' object is not callable");
  return *std::get<8>(data_);
}

value value::get(std::string_view key) const {
  if (!is_mapping()) return value();
  for (const auto& [k, v] : entries())
    if (k == key) return v;
  return value();
}

void value::set(std::string_view key, value v) const {
  for (auto& [k, old] : entries())
    if (k == key) {
      old = std::move(v);
      return;
    }
  entries().emplace_back(std::string(key), std::move(v));
}

namespace {

// Python's repr(float): the shortest digits that round-trip, in fixed notation when the decimal
// exponent is in [-4, 16), otherwise as d.ddde+XX.
std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(end - buf));  // "-1.2345e+05"
  const std::string sign = sci[0] == '-' ? "-" : "";
  if (!sign.empty()) sci.remove_prefix(1);
  const size_t e = sci.find('e');
  const int exp = std::stoi(std::string(sci.substr(e + 1)));
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits.push_back(c);
  // Built with append only: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string&&.
  std::string out = sign;
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) out.append(".").append(digits, 1, std::string::npos);
    char ex[16];
    std::snprintf(ex, sizeof ex, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    return out.append(ex);
  }
  if (exp < 0) return out.append("0.").append(static_cast<size_t>(-exp - 1), '0').append(digits);
  if (static_cast<int>(digits.size()) <= exp + 1)
    return out.append(digits).append(static_cast<size_t>(exp + 1) - digits.size(), '0').append(".0");
  return out.append(digits, 0, static_cast<size_t>(exp + 1)).append(".").append(digits, static_cast<size_t>(exp + 1),
                                                                                 std::string::npos);
}

std::string py_quote(const std::string& s) {
  // Python's repr picks single quotes unless the text holds one and no double quote.
  const char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == q) out += '\\';
        out += c;
    }
  }
  return out + q;
}

}  // namespace

std::string value::to_string() const {
  switch (type()) {
    case kind::undefined: return "";
    case kind::none: return "None";
    case kind::boolean: return as_bool() ? "True" : "False";
    case kind::integer: return std::to_string(std::get<int64_t>(data_));
    case kind::floating: return float_repr(std::get<double>(data_));
    case kind::string: return std::get<std::string>(data_);
    default: return repr();
  }
}

std::string value::repr() const {
  switch (type()) {
    case kind::string: return py_quote(as_string());
    case kind::list: {
      std::string s = "[";
      for (size_t i = 0; i < items().size(); ++i) s += (i ? ", " : "") + items()[i].repr();
      return s + "]";
    }
    case kind::dict: {
      std::string s = "{";
      bool first = true;
      for (const auto& [k, v] : entries()) {
        s += (first ? "" : ", ") + py_quote(k) + ": " + v.repr();
        first = false;
      }
      return s + "}";
    }
    case kind::ns: return "<Namespace>";
    case kind::callable: return "<function>";
    default: return to_string();
  }
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (u < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void value::json_into(std::string& out, std::optional<int> indent, bool sort_keys, int depth) const {
  auto newline = [&](int d) {
    if (!indent) return;
    out += '\n';
    out.append(static_cast<size_t>(*indent) * d, ' ');
  };
  const char* comma = indent ? "," : ", ";
  switch (type()) {
    case kind::undefined:
    case kind::none: out += "null"; return;
    case kind::boolean: out += as_bool() ? "true" : "false"; return;
    case kind::integer:
    case kind::floating: {
      const std::string s = to_string();
      out += s == "nan" ? "NaN" : s == "inf" ? "Infinity" : s == "-inf" ? "-Infinity" : s;
      return;
    }
    case kind::string: out += json_quote(as_string()); return;
    case kind::list: {
      if (items().empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items().size(); ++i) {
        if (i) out += comma;
        newline(depth + 1);
        items()[i].json_into(out, indent, sort_keys, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    }
    case kind::dict:
    case kind::ns: {
      if (entries().empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, value>*> order;
      for (const auto& e : entries()) order.push_back(&e);
      if (sort_keys) std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t i = 0; i < order.size(); ++i) {
        if (i) out += comma;
        newline(depth + 1);
        out += json_quote(order[i]->first) + ": ";
        order[i]->second.json_into(out, indent, sort_keys, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    }
    case kind::callable: throw error("Object of type function is not JSON serializable");
  }
}

std::string value::to_json(std::optional<int> indent, bool sort_keys) const {
  std::string out;
  json_into(out, indent, sort_keys, 0);
  return out;
}

bool value::equals(const value& o) const {
  const kind a = type(), b = o.type();
  const bool num_a = a == kind::integer || a == kind::floating || a == kind::boolean;
  const bool num_b = b == kind::integer || b == kind::floating || b == kind::boolean;
  if (num_a && num_b) return as_double() == o.as_double();
  if (a != b) return (a == kind::undefined || a == kind::none) && (b == kind::undefined || b == kind::none) && a == b;
  switch (a) {
    case kind::undefined:
    case kind::none: return true;
    case kind::string: return as_string() == o.as_string();
    case kind::list: {
      const auto &x = items(), &y = o.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!x[i].equals(y[i])) return false;
      return true;
    }
    case kind::dict:
    case kind::ns: {
      if (entries().size() != o.entries().size()) return false;
      for (const auto& [k, v] : entries())
        if (!v.equals(o.get(k))) return false;
      return true;
    }
    default: return &data_ == &o.data_;
  }
}

int value::compare(const value& o) const {
  if ((is_number() || type() == kind::boolean) && (o.is_number() || o.type() == kind::boolean)) {
    const double x = as_double(), y = o.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (is_string() && o.is_string()) {
    const int c = as_string().compare(o.as_string());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (is_list() && o.is_list()) {
    const auto &x = items(), &y = o.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (int c = x[i].compare(y[i])) return c;
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw error("'<' not supported between instances of '" + type_name() + "' and '" + o.type_name() + "'");
}

}  // namespace moat::engine::jinja
