// Typed access to the request DOM, with error messages worded as OpenAI words them so that
// clients which match on them (and people who search for them) see the familiar text.
#include "openai/json_read.h"

#include <charconv>
#include <cmath>
#include <memory>

namespace moat::openai::detail {
namespace {

std::string_view type_name(dom::element value) {
  switch (value.type()) {
    case dom::element_type::ARRAY: return "an array";
    case dom::element_type::OBJECT: return "an object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64: return "an integer";
    case dom::element_type::DOUBLE: return "a decimal";
    case dom::element_type::STRING: return "a string";
    case dom::element_type::BOOL: return "a boolean";
    case dom::element_type::NULL_VALUE: return "null";
  }
  return "an unknown value";
}

std::string number_text(double value) {
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, result.ptr);
}

[[noreturn]] void fail_range(const param_path& path, bool integer, bool below, double limit,
                             double got) {
  const std::string name = path.str();
  std::string message = "Invalid '" + name + "': " + (integer ? "integer " : "decimal ") +
                        (below ? "below minimum value. Expected a value >= "
                               : "above maximum value. Expected a value <= ") +
                        number_text(limit) + ", but got " + number_text(got) + " instead.";
  fail(std::move(message), name);
}

}  // namespace

std::string param_path::str() const {
  if (parent == nullptr) return std::string(key);
  std::string out = parent->str();
  if (is_index) {
    out += '[';
    out += std::to_string(index);
    out += ']';
  } else {
    if (!out.empty()) out += '.';
    out += key;
  }
  return out;
}

void fail(std::string message, std::optional<std::string> param, std::optional<std::string> code) {
  throw request_error{invalid_request(std::move(message), std::move(param), std::move(code))};
}

void fail_missing(const param_path& path) {
  const std::string name = path.str();
  fail("Missing required parameter: '" + name + "'.", name);
}

void fail_type(const param_path& path, dom::element value, std::string_view expected) {
  const std::string name = path.str();
  fail("Invalid type for '" + name + "': expected " + std::string(expected) + ", but got " +
           std::string(type_name(value)) + " instead.",
       name);
}

void fail_unsupported_value(const param_path& path, std::string_view value,
                            std::string_view supported) {
  fail("Invalid value: '" + std::string(value) + "'. Supported values are: " +
           std::string(supported) + ".",
       path.str());
}

dom::object parse_body(dom::parser& parser, std::string_view body) {
  dom::element root;
  if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS) {
    fail("We could not parse the JSON body of your request. The API expects a JSON payload, "
         "but what was sent was not valid JSON.");
  }
  dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) {
    fail("The request body must be a JSON object, but got " + std::string(type_name(root)) +
         ".");
  }
  return object;
}

object_fields::object_fields(dom::object object) : object_(object) {
  for (dom::key_value_pair field : object) {
    if (count_ == inline_count) {
      overflow_ = true;
      signature_ = ~uint64_t{0};  // see find
      break;
    }
    const uint64_t head = head_of(field.key);
    signature_ |= signature_bit(head, field.key.size());
    std::construct_at(&entries_[count_++].e, entry{head, field.key, field.value});
  }
}

std::optional<dom::element> object_fields::find_in_dom(std::string_view key) const {
  dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::string_view as_string(dom::element value, const param_path& path) {
  std::string_view text;
  if (value.get_string().get(text) != simdjson::SUCCESS) fail_type(path, value, "a string");
  return text;
}

bool as_bool(dom::element value, const param_path& path) {
  bool flag = false;
  if (value.get_bool().get(flag) != simdjson::SUCCESS) fail_type(path, value, "a boolean");
  return flag;
}

int64_t as_integer(dom::element value, const param_path& path, int64_t min, int64_t max) {
  int64_t number = 0;
  if (value.type() == dom::element_type::UINT64) {
    // Larger than any int64: above every maximum we use.
    fail_range(path, true, false, static_cast<double>(max), value.get_uint64().value_unsafe());
  }
  if (value.get_int64().get(number) != simdjson::SUCCESS) fail_type(path, value, "an integer");
  if (number < min) fail_range(path, true, true, static_cast<double>(min), static_cast<double>(number));
  if (number > max) fail_range(path, true, false, static_cast<double>(max), static_cast<double>(number));
  return number;
}

double as_number(dom::element value, const param_path& path, double min, double max) {
  double number = 0;
  // get_double() also accepts integers, as JSON makes no difference between 1 and 1.0.
  if (value.get_double().get(number) != simdjson::SUCCESS) fail_type(path, value, "a number");
  if (number < min) fail_range(path, false, true, min, number);
  if (number > max) fail_range(path, false, false, max, number);
  return number;
}

dom::array as_array(dom::element value, const param_path& path) {
  dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) fail_type(path, value, "an array");
  return array;
}

dom::object as_object(dom::element value, const param_path& path) {
  dom::object object;
  if (value.get_object().get(object) != simdjson::SUCCESS) fail_type(path, value, "an object");
  return object;
}

}  // namespace moat::openai::detail
