// POST /v1/chat/completions: CreateChatCompletionRequest plus vLLM's top_k, min_p and
// add_generation_prompt. Fields moat does not use (metadata, store, ...) are ignored as unknown
// fields are; tool use and response_format are read so the handler can refuse them.
#include "openai/request_common.h"

namespace moat::openai {

namespace {

using namespace detail;

// `tools` + `tool_choice`, or the deprecated `functions` + `function_call`. As OpenAI (and vLLM)
// default it, a request offering tools without a choice asks for "auto".
void parse_tool_use(const object_fields& object, const param_path& root, chat_request& request) {
  const bool legacy = !optional_field(object, "tools") && optional_field(object, "functions");
  // Each lookup names its key as a literal, which object_fields folds into constants.
  const std::string_view list_key =
      legacy ? std::string_view("functions") : std::string_view("tools");
  const std::string_view choice_key =
      legacy ? std::string_view("function_call") : std::string_view("tool_choice");
  if (auto v = legacy ? optional_field(object, "functions") : optional_field(object, "tools")) {
    request.tools = as_array(*v, root.field(list_key)).size();
  }
  auto choice =
      legacy ? optional_field(object, "function_call") : optional_field(object, "tool_choice");
  if (!choice) {
    request.tool_choice = request.tools > 0 ? "auto" : "";
    return;
  }
  const param_path path = root.field(choice_key);
  std::string_view text;
  if (choice->get_string().get(text) == simdjson::SUCCESS) {
    if (text != "none" && text != "auto" && (legacy || text != "required")) {
      fail_unsupported_value(path, text, legacy ? "none, auto" : "none, auto, required");
    }
    request.tool_choice = std::string(text);
  } else {
    as_object(*choice, path);  // {"type":"function","function":{"name":...}} or {"name":...}
    request.tool_choice = "function";
  }
}

}  // namespace

chat_parse_result parse_chat_request(std::string_view body) {
  using namespace detail;
  return run_parser<chat_parse_result>([&](chat_request& request) {
    const param_path root;
    parser_lease parser(body.size());
    const object_fields object(parse_body(parser.get(), body));
    request.model = required_model(object, root);
    const param_path messages_path = root.field("messages");
    request.messages = parse_messages(required_field(object, messages_path), messages_path);

    sampling_params& sampling = request.sampling;
    parse_sampling_common(object, root, sampling);
    // max_completion_tokens replaced max_tokens; when both come, the newer one wins.
    if (auto v = optional_field(object, "max_completion_tokens")) {
      sampling.max_tokens = as_integer(*v, root.field("max_completion_tokens"), 1, INT32_MAX);
    } else if (auto old = optional_field(object, "max_tokens")) {
      sampling.max_tokens = as_integer(*old, root.field("max_tokens"), 1, INT32_MAX);
    }

    if (auto v = optional_field(object, "logprobs")) {
      sampling.logprobs = as_bool(*v, root.field("logprobs"));
    }
    if (auto v = optional_field(object, "top_logprobs")) {
      const param_path path = root.field("top_logprobs");
      sampling.top_logprobs = static_cast<int>(as_integer(*v, path, 0, 20));
      if (!sampling.logprobs) {
        fail("Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
             "'top_logprobs' is used.",
             path.str());
      }
    }

    parse_stream(object, root, request.stream, request.stream_opts);
    if (auto v = optional_field(object, "add_generation_prompt")) {
      request.add_generation_prompt = as_bool(*v, root.field("add_generation_prompt"));
    }
    request.user = optional_string(object, root.field("user"));
    parse_tool_use(object, root, request);
    if (auto v = optional_field(object, "response_format")) {
      const param_path path = root.field("response_format");
      const dom::object format = as_object(*v, path);
      request.response_format = std::string(as_string(required_field(format, path.field("type")), path.field("type")));
    }
    request.cache_salt = optional_field(object, "cache_salt").has_value();
  });
}

}  // namespace moat::openai
