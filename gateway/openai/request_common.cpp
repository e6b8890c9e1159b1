// Request parsing shared by the endpoints: messages, sampling fields, stream flags, prompts.
#include "openai/request_common.h"

#include <charconv>
#include <limits>

namespace moat::openai::detail {
namespace {

constexpr int64_t max_token_id = std::numeric_limits<int32_t>::max();

[[noreturn]] void fail_empty_array(const param_path& path) {
  const std::string name = path.str();
  fail("Invalid '" + name +
           "': empty array. Expected an array with minimum length 1, but got an empty array "
           "instead.",
       name);
}

[[noreturn]] void fail_too_long(const param_path& path, size_t max, size_t got) {
  const std::string name = path.str();
  fail("Invalid '" + name + "': array too long. Expected an array with maximum length " +
           std::to_string(max) + ", but got an array with length " + std::to_string(got) +
           " instead.",
       name);
}

bool known_role(std::string_view role) {
  return role == "system" || role == "developer" || role == "user" || role == "assistant" ||
         role == "tool";
}

// Content parts: "text" parts are joined with "\n"; "refusal" parts (assistant history) carry
// no prompt text; media parts are refused because no moat backend reads them.
void parse_content_parts(dom::array parts, const param_path& path, std::string& out) {
  if (parts.size() == 0) fail_empty_array(path);
  size_t j = 0;
  bool first = true;
  for (dom::element item : parts) {
    const param_path part_path = path.at(j++);
    const dom::object part = as_object(item, part_path);
    const param_path type_path = part_path.field("type");
    const std::string_view type = as_string(required_field(part, type_path), type_path);
    if (type == "text") {
      const param_path text_path = part_path.field("text");
      const std::string_view text = as_string(required_field(part, text_path), text_path);
      if (!first) out += '\n';
      out += text;
      first = false;
    } else if (type == "refusal") {
      continue;
    } else if (type == "image_url" || type == "input_audio" || type == "file") {
      fail("Content parts of type '" + std::string(type) +
               "' are not supported: moat accepts text parts only.",
           type_path.str(), "unsupported_content");
    } else {
      fail_unsupported_value(type_path, type, "'text', 'image_url', 'input_audio', and 'file'");
    }
  }
}

// Fills `message`, already in its list: built in place, not moved there and destroyed.
void parse_message(dom::element value, const param_path& path, chat_message& message) {
  const object_fields object(as_object(value, path));

  const param_path role_path = path.field("role");
  const std::string_view role = as_string(required_field(object, role_path), role_path);
  if (!known_role(role)) {
    fail_unsupported_value(role_path, role,
                           "'system', 'assistant', 'user', 'tool', and 'developer'");
  }
  message.role = role;

  // An assistant turn that called tools may have no content.
  bool has_tool_calls = false;
  if (role == "assistant") {
    const param_path calls_path = path.field("tool_calls");
    if (auto calls = optional_field(object, "tool_calls")) {
      has_tool_calls = as_array(*calls, calls_path).size() > 0;
    }
    if (auto call = optional_field(object, "function_call")) {
      as_object(*call, path.field("function_call"));
      has_tool_calls = true;
    }
  }
  if (role == "tool") {
    const param_path id_path = path.field("tool_call_id");
    as_string(required_field(object, id_path), id_path);
  }

  const param_path content_path = path.field("content");
  if (auto content = optional_field(object, "content")) {
    if (content->is_string()) {
      message.content = content->get_string().value_unsafe();
    } else if (content->is_array()) {
      parse_content_parts(content->get_array().value_unsafe(), content_path, message.content);
    } else {
      fail_type(content_path, *content, "one of a string or array of objects");
    }
  } else if (!has_tool_calls) {
    fail_missing(content_path);
  }

  if (auto name = optional_field(object, "name")) {
    message.name = as_string(*name, path.field("name"));
  }
}

uint64_t parse_seed(dom::element value, const param_path& path) {
  // OpenAI takes any 64-bit integer; negative seeds are reinterpreted, which keeps them
  // deterministic.
  if (value.type() == dom::element_type::UINT64) return value.get_uint64().value_unsafe();
  if (value.type() == dom::element_type::INT64) {
    return static_cast<uint64_t>(value.get_int64().value_unsafe());
  }
  fail_type(path, value, "an integer");
}

void parse_stop(dom::element value, const param_path& path, std::vector<std::string>& out) {
  // Empty stop strings would match everywhere; they are dropped rather than obeyed.
  if (value.is_string()) {
    std::string_view text = value.get_string().value_unsafe();
    if (!text.empty()) out.emplace_back(text);
    return;
  }
  if (!value.is_array()) fail_type(path, value, "one of a string or array of strings");
  const dom::array array = value.get_array().value_unsafe();
  if (array.size() > 4) fail_too_long(path, 4, array.size());
  size_t i = 0;
  for (dom::element item : array) {
    const std::string_view text = as_string(item, path.at(i++));
    if (!text.empty()) out.emplace_back(text);
  }
}

void parse_logit_bias(dom::element value, const param_path& path,
                      std::vector<std::pair<int32_t, float>>& out) {
  const dom::object object = as_object(value, path);
  out.reserve(object.size());
  for (dom::key_value_pair entry : object) {
    int64_t token = -1;
    const std::string_view key = entry.key;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), token);
    if (ec != std::errc() || end != key.data() + key.size() || token < 0 ||
        token > max_token_id) {
      fail("Invalid key in 'logit_bias': '" + std::string(key) +
               "'. Keys must be token ids written as integer strings.",
           path.str());
    }
    const double bias = as_number(entry.value, path, -100.0, 100.0);
    out.emplace_back(static_cast<int32_t>(token), static_cast<float>(bias));
  }
}

}  // namespace

parser_lease::parser_lease(size_t body_size) {
  if (body_size > max_shared_body) {
    own_ = std::make_unique<dom::parser>();
  } else {
    thread_local dom::parser parser;
    shared_ = &parser;
  }
}

std::string required_model(const object_fields& body, const param_path& root) {
  const param_path path = root.field("model");
  return std::string(as_string(required_field(body, path), path));
}

std::vector<chat_message> parse_messages(dom::element value, const param_path& path) {
  const dom::array array = as_array(value, path);
  if (array.size() == 0) fail_empty_array(path);
  std::vector<chat_message> messages;
  messages.reserve(array.size());
  size_t i = 0;
  for (dom::element item : array) parse_message(item, path.at(i++), messages.emplace_back());
  return messages;
}

void parse_sampling_common(const object_fields& body, const param_path& root,
                           sampling_params& out) {
  if (auto v = optional_field(body, "temperature")) {
    out.temperature = as_number(*v, root.field("temperature"), 0.0, 2.0);
  }
  if (auto v = optional_field(body, "top_p")) out.top_p = as_number(*v, root.field("top_p"), 0.0, 1.0);
  if (auto v = optional_field(body, "top_k")) {
    // vLLM: -1 (and 0) turn top-k off.
    out.top_k = static_cast<int>(as_integer(*v, root.field("top_k"), -1, max_token_id));
    if (out.top_k == 0) out.top_k = -1;
  }
  if (auto v = optional_field(body, "min_p")) out.min_p = as_number(*v, root.field("min_p"), 0.0, 1.0);
  if (auto v = optional_field(body, "presence_penalty")) {
    out.presence_penalty = as_number(*v, root.field("presence_penalty"), -2.0, 2.0);
  }
  if (auto v = optional_field(body, "frequency_penalty")) {
    out.frequency_penalty = as_number(*v, root.field("frequency_penalty"), -2.0, 2.0);
  }
  if (auto v = optional_field(body, "seed")) out.seed = parse_seed(*v, root.field("seed"));
  if (auto v = optional_field(body, "n")) out.n = static_cast<int>(as_integer(*v, root.field("n"), 1, 128));
  if (auto v = optional_field(body, "stop")) parse_stop(*v, root.field("stop"), out.stop);
  if (auto v = optional_field(body, "logit_bias")) {
    parse_logit_bias(*v, root.field("logit_bias"), out.logit_bias);
  }
}

void parse_stream(const object_fields& body, const param_path& root, bool& stream,
                  stream_options& options) {
  if (auto v = optional_field(body, "stream")) stream = as_bool(*v, root.field("stream"));
  if (auto v = optional_field(body, "stream_options")) {
    const param_path path = root.field("stream_options");
    const dom::object object = as_object(*v, path);
    if (!stream) {
      fail("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
           path.str());
    }
    if (auto usage = optional_field(object, "include_usage")) {
      options.include_usage = as_bool(*usage, path.field("include_usage"));
    }
  }
}

std::vector<int32_t> parse_token_list(dom::array array, const param_path& path) {
  std::vector<int32_t> tokens;
  tokens.reserve(array.size());
  size_t i = 0;
  for (dom::element item : array) {
    tokens.push_back(static_cast<int32_t>(as_integer(item, path.at(i++), 0, max_token_id)));
  }
  return tokens;
}

std::vector<prompt> parse_prompts(dom::element value, const param_path& path, bool allow_empty,
                                  size_t max_items) {
  std::vector<prompt> prompts;
  if (value.is_string()) {
    prompt p;
    p.text = value.get_string().value_unsafe();
    if (p.text.empty() && !allow_empty) {
      fail("Invalid '" + path.str() + "': empty string. Expected a non-empty string.", path.str());
    }
    prompts.push_back(std::move(p));
    return prompts;
  }
  if (!value.is_array()) {
    fail_type(path, value, "one of a string, array of strings, array of integers, or array of "
                           "arrays of integers");
  }
  const dom::array array = value.get_array().value_unsafe();
  if (array.size() == 0) fail_empty_array(path);
  const dom::element first = array.at(0).value_unsafe();

  if (first.is_int64() || first.is_uint64()) {  // one prompt given as token ids
    prompt p;
    p.is_tokens = true;
    p.tokens = parse_token_list(array, path);
    prompts.push_back(std::move(p));
    return prompts;
  }
  if (array.size() > max_items) fail_too_long(path, max_items, array.size());
  prompts.reserve(array.size());
  size_t i = 0;
  for (dom::element item : array) {
    const param_path item_path = path.at(i++);
    prompt p;
    if (first.is_string()) {
      p.text = as_string(item, item_path);
      if (p.text.empty() && !allow_empty) {
        fail("Invalid '" + item_path.str() + "': empty string. Expected a non-empty string.",
             item_path.str());
      }
    } else if (first.is_array()) {
      const dom::array tokens = as_array(item, item_path);
      if (tokens.size() == 0) fail_empty_array(item_path);
      p.is_tokens = true;
      p.tokens = parse_token_list(tokens, item_path);
    } else {
      fail_type(item_path, item, "one of a string, an integer, or an array of integers");
    }
    prompts.push_back(std::move(p));
  }
  return prompts;
}

std::optional<std::string> optional_string(const object_fields& body, const param_path& path) {
  if (auto v = optional_field(body, path.key)) return std::string(as_string(*v, path));
  return std::nullopt;
}

}  // namespace moat::openai::detail
