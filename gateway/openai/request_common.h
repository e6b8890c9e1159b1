// Internal: the pieces of request parsing that several endpoints share (messages, sampling,
// streaming flags, prompts given as text or token ids). Each throws request_error.
#pragma once

#include <vector>

#include "openai/json_read.h"
#include "openai/protocol.h"

namespace moat::openai::detail {

// One thread-local DOM parser per thread: its buffers are reused, so a request parses with no
// allocation once the thread has seen a body of that size.
dom::parser& thread_parser();

std::string required_model(const dom::object& body, const param_path& root);

// `messages` of chat (and of /tokenize): roles, string or text-part content, names.
std::vector<chat_message> parse_messages(dom::element value, const param_path& path);

// Fields chat and completions share: temperature, top_p, top_k, min_p, the penalties, seed, n,
// stop and logit_bias.
void parse_sampling_common(const dom::object& body, const param_path& root, sampling_params& out);

// `stream` and `stream_options` (rejected unless stream is true, as OpenAI does).
void parse_stream(const dom::object& body, const param_path& root, bool& stream,
                  stream_options& options);

// A prompt as completions and embeddings accept it: a string, a list of strings, a list of
// token ids, or a list of such lists. Empty strings and lists are refused when allow_empty is
// false (embeddings); at most max_items prompts.
std::vector<prompt> parse_prompts(dom::element value, const param_path& path, bool allow_empty,
                                  size_t max_items);

std::vector<int32_t> parse_token_list(dom::array array, const param_path& path);

std::optional<std::string> optional_string(const dom::object& body, const param_path& path);

}  // namespace moat::openai::detail
