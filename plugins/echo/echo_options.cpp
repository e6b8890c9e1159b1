// Parsing and validation of the echo backend's options.
#include "echo_options.h"

#include <simdjson.h>

#include <charconv>

namespace moat::echo {
namespace {

namespace dom = simdjson::dom;

bool read_uint(dom::element value, std::string_view key, uint64_t min, uint64_t max,
               uint32_t& out, std::string& problem) {
  uint64_t number = 0;
  bool ok = false;
  if (value.is_uint64() || value.is_int64()) {
    int64_t signed_value = 0;
    if (value.get_int64().get(signed_value) == simdjson::SUCCESS) {
      ok = signed_value >= 0;
      number = static_cast<uint64_t>(signed_value);
    } else {
      ok = value.get_uint64().get(number) == simdjson::SUCCESS;
    }
  } else if (value.is_string()) {
    const std::string_view text = value.get_string().value_unsafe();
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    ok = ec == std::errc() && end == text.data() + text.size() && !text.empty();
  }
  if (!ok) {
    problem = "echo: option '" + std::string(key) + "' must be a non-negative integer";
    return false;
  }
  if (number < min || number > max) {
    problem = "echo: option '" + std::string(key) + "' must be between " + std::to_string(min) +
              " and " + std::to_string(max) + ", got " + std::to_string(number);
    return false;
  }
  out = static_cast<uint32_t>(number);
  return true;
}

}  // namespace

std::string_view fault_name(fault_mode mode) {
  switch (mode) {
    case fault_mode::none: return "none";
    case fault_mode::fail_before_first: return "fail_before_first";
    case fault_mode::fail_mid_stream: return "fail_mid_stream";
    case fault_mode::hang: return "hang";
  }
  return "none";
}

bool parse_options(std::string_view json, echo_options& out, std::string& problem) {
  out = echo_options{};
  if (json.find_first_not_of(" \t\r\n") == std::string_view::npos) return true;
  dom::parser parser;
  dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) {
    problem = "echo: options are not valid JSON";
    return false;
  }
  if (root.is_null()) return true;
  dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) {
    problem = "echo: options must be a map";
    return false;
  }
  for (dom::key_value_pair entry : object) {
    const std::string_view key = entry.key;
    const dom::element value = entry.value;
    bool ok = true;
    if (key == "chunk_chars") {
      ok = read_uint(value, key, 0, 1u << 20, out.chunk_chars, problem);
    } else if (key == "delay_ms") {
      ok = read_uint(value, key, 0, 600000, out.delay_ms, problem);
    } else if (key == "fault_after_deltas") {
      ok = read_uint(value, key, 0, 1u << 30, out.fault_after_deltas, problem);
    } else if (key == "max_context") {
      ok = read_uint(value, key, 1, 1u << 30, out.max_context, problem);
    } else if (key == "embedding_dim") {
      ok = read_uint(value, key, 1, 65536, out.embedding_dim, problem);
    } else if (key == "workers") {
      ok = read_uint(value, key, 1, 64, out.workers, problem);
    } else if (key == "answer") {
      std::string_view name;
      if (value.get_string().get(name) != simdjson::SUCCESS) name = "?";
      if (name == "message" || name == "body") {
        out.answer_body = name == "body";
      } else {
        problem = "echo: option 'answer' must be message or body";
        ok = false;
      }
    } else if (key == "fault") {
      std::string_view name;
      if (value.get_string().get(name) != simdjson::SUCCESS) name = "?";
      if (name == "none") {
        out.fault = fault_mode::none;
      } else if (name == "fail_before_first") {
        out.fault = fault_mode::fail_before_first;
      } else if (name == "fail_mid_stream") {
        out.fault = fault_mode::fail_mid_stream;
      } else if (name == "hang") {
        out.fault = fault_mode::hang;
      } else {
        problem = "echo: option 'fault' must be one of none, fail_before_first, "
                  "fail_mid_stream, hang";
        ok = false;
      }
    } else {
      problem = "echo: unknown option '" + std::string(key) +
                "' (known: answer, chunk_chars, delay_ms, fault, fault_after_deltas, "
                "max_context, embedding_dim, workers)";
      ok = false;
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace moat::echo
