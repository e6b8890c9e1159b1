// jinja_value.h — the values a chat template computes with: Python-like none/bool/int/float/str,
// lists, insertion-ordered dicts, namespaces and callables, plus the conversions Jinja (as
// transformers runs it) applies: truthiness, str(), repr(), json.dumps, equality and ordering.
//
//   using namespace moat::engine::jinja;
//   value msg = value::dict({{"role", value("user")}, {"content", value("Hi")}});
//   value msgs = value::list({msg});
//   std::string s = msgs.to_json();            // [{"role": "user", "content": "Hi"}]
//   bool t = msg.get("role").truthy();         // true
//
// Lists, dicts and namespaces are shared by reference (as Python objects are); everything else
// is copied. Errors raise jinja::error, which chat_template turns into chat_template_error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace moat::engine::jinja {

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class value;
using value_list = std::vector<value>;
using value_dict = std::vector<std::pair<std::string, value>>;  // insertion order, unique keys

// Arguments of a call: positional values, then keyword (name, value) pairs.
struct call_args {
  std::vector<value> positional;
  std::vector<std::pair<std::string, value>> keywords;
  const value* get(size_t index, std::string_view name) const;  // positional index or keyword
};
using function = std::function<value(const call_args&)>;

class value {
 public:
  enum class kind { undefined, none, boolean, integer, floating, string, list, dict, ns, callable };

  value() = default;  // undefined
  static value none();
  explicit value(bool b) : data_(b) {}
  explicit value(int64_t i) : data_(i) {}
  explicit value(int i) : data_(static_cast<int64_t>(i)) {}
  explicit value(double d) : data_(d) {}
  explicit value(std::string s) : data_(std::move(s)) {}
  explicit value(const char* s) : data_(std::string(s)) {}
  static value list(value_list items = {});
  static value dict(value_dict items = {});
  static value ns(value_dict items = {});  // namespace(): a dict whose attributes may be set
  static value callable(function f);

  kind type() const;
  bool is_undefined() const { return type() == kind::undefined; }
  bool is_none() const { return type() == kind::none; }
  bool is_string() const { return type() == kind::string; }
  bool is_number() const { return type() == kind::integer || type() == kind::floating; }
  bool is_list() const { return type() == kind::list; }
  bool is_mapping() const { return type() == kind::dict || type() == kind::ns; }

  bool truthy() const;
  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const;     // integers and booleans; error otherwise
  double as_double() const;   // any number
  const std::string& as_string() const;  // error unless a string
  value_list& items() const;  // the list (error unless a list)
  value_dict& entries() const;  // the dict or namespace entries
  const function& as_function() const;

  // dict/namespace member lookup; undefined when absent (or not a mapping).
  value get(std::string_view key) const;
  void set(std::string_view key, value v) const;  // on dicts and namespaces

  std::string to_string() const;  // Python str()
  std::string repr() const;       // Python repr()
  // json.dumps(self, ensure_ascii=False, indent=indent, sort_keys=sort_keys)
  std::string to_json(std::optional<int> indent = std::nullopt, bool sort_keys = false) const;
  std::string type_name() const;

  bool equals(const value& other) const;
  // -1/0/1 for numbers, strings, lists; error for other kinds.
  int compare(const value& other) const;

 private:
  struct none_tag {};
  struct dict_box {
    value_dict entries;
    bool is_namespace = false;
  };
  using data = std::variant<std::monostate, none_tag, bool, int64_t, double, std::string,
                            std::shared_ptr<value_list>, std::shared_ptr<dict_box>, std::shared_ptr<function>>;
  data data_;
  void json_into(std::string& out, std::optional<int> indent, bool sort_keys, int depth) const;
};

// A JSON string literal as json.dumps(ensure_ascii=False) writes it.
std::string json_quote(std::string_view s);

}  // namespace moat::engine::jinja
