// The prompt-shaped endpoints: /v1/completions, /v1/embeddings, and vLLM's /tokenize and
// /detokenize.
#include "openai/request_common.h"

namespace moat::openai {
namespace {

// OpenAI's limit on the inputs of one request.
constexpr size_t max_prompts = 2048;

}  // namespace

completion_parse_result parse_completion_request(std::string_view body) {
  using namespace detail;
  return run_parser<completion_parse_result>([&](completion_request& request) {
    const param_path root;
    parser_lease parser(body.size());
    const object_fields object(parse_body(parser.get(), body));
    request.model = required_model(object, root);
    const param_path prompt_path = root.field("prompt");
    request.prompts =
        parse_prompts(required_field(object, prompt_path), prompt_path, true, max_prompts);

    sampling_params& sampling = request.sampling;
    parse_sampling_common(object, root, sampling);
    // OpenAI's default for completions is 16 tokens (chat has none).
    sampling.max_tokens = 16;
    if (auto v = optional_field(object, "max_tokens")) {
      sampling.max_tokens = as_integer(*v, root.field("max_tokens"), 0, INT32_MAX);
    }
    if (auto v = optional_field(object, "logprobs")) {
      sampling.logprobs = true;
      sampling.top_logprobs = static_cast<int>(as_integer(*v, root.field("logprobs"), 0, 5));
    }
    if (auto v = optional_field(object, "best_of")) {
      const param_path path = root.field("best_of");
      const int64_t best_of = as_integer(*v, path, 0, 20);
      if (best_of < sampling.n) {
        fail("best_of must be greater than or equal to n.", path.str());
      }
      if (best_of > sampling.n) {
        fail("best_of greater than n is not supported.", path.str(), "unsupported_parameter");
      }
    }
    if (auto v = optional_field(object, "echo")) request.echo = as_bool(*v, root.field("echo"));
    if (auto v = optional_field(object, "suffix")) {
      const param_path path = root.field("suffix");
      request.suffix = as_string(*v, path);
      if (!request.suffix.empty()) {
        fail("suffix is not supported: moat does not do fill-in-the-middle.", path.str(),
             "unsupported_parameter");
      }
    }
    parse_stream(object, root, request.stream, request.stream_opts);
    request.user = optional_string(object, root.field("user"));
    request.cache_salt = optional_field(object, "cache_salt").has_value();
  });
}

embedding_parse_result parse_embedding_request(std::string_view body) {
  using namespace detail;
  return run_parser<embedding_parse_result>([&](embedding_request& request) {
    const param_path root;
    parser_lease parser(body.size());
    const object_fields object(parse_body(parser.get(), body));
    request.model = required_model(object, root);
    const param_path input_path = root.field("input");
    request.inputs =
        parse_prompts(required_field(object, input_path), input_path, false, max_prompts);
    if (auto v = optional_field(object, "encoding_format")) {
      const param_path path = root.field("encoding_format");
      const std::string_view format = as_string(*v, path);
      if (format != "float" && format != "base64") {
        fail_unsupported_value(path, format, "'float' and 'base64'");
      }
      request.encoding_format = format;
    }
    if (auto v = optional_field(object, "dimensions")) {
      request.dimensions = static_cast<int>(as_integer(*v, root.field("dimensions"), 1, INT32_MAX));
    }
    request.user = optional_string(object, root.field("user"));
  });
}

tokenize_parse_result parse_tokenize_request(std::string_view body) {
  using namespace detail;
  return run_parser<tokenize_parse_result>([&](tokenize_request& request) {
    const param_path root;
    parser_lease parser(body.size());
    const object_fields object(parse_body(parser.get(), body));
    // As in vLLM, model may be left out when the server has one model; the router decides.
    if (auto model = optional_string(object, root.field("model"))) request.model = *model;
    auto prompt = optional_field(object, "prompt");
    auto messages = optional_field(object, "messages");
    if (prompt && messages) {
      fail("Provide either 'prompt' or 'messages', not both.", "messages");
    }
    if (prompt) {
      request.prompt = std::string(as_string(*prompt, root.field("prompt")));
    } else if (messages) {
      request.messages = parse_messages(*messages, root.field("messages"));
    } else {
      fail_missing(root.field("prompt"));
    }
    if (auto v = optional_field(object, "add_special_tokens")) {
      request.add_special_tokens = as_bool(*v, root.field("add_special_tokens"));
    }
    if (auto v = optional_field(object, "add_generation_prompt")) {
      request.add_generation_prompt = as_bool(*v, root.field("add_generation_prompt"));
    }
  });
}

detokenize_parse_result parse_detokenize_request(std::string_view body) {
  using namespace detail;
  return run_parser<detokenize_parse_result>([&](detokenize_request& request) {
    const param_path root;
    parser_lease parser(body.size());
    const object_fields object(parse_body(parser.get(), body));
    if (auto model = optional_string(object, root.field("model"))) request.model = *model;
    const param_path tokens_path = root.field("tokens");
    request.tokens =
        parse_token_list(as_array(required_field(object, tokens_path), tokens_path), tokens_path);
  });
}

}  // namespace moat::openai
