// Internal: the pieces of request parsing that several endpoints share (messages, sampling,
// streaming flags, prompts given as text or token ids). Each throws request_error.
#pragma once

#include <memory>
#include <vector>

#include "openai/json_read.h"
#include "openai/protocol.h"

namespace moat::openai::detail {

// The DOM parser for one body. Bodies up to a size share one parser per thread, whose buffers
// are reused (no allocation once the thread has seen a body that big); a larger body gets a
// parser of its own, freed with the lease, because simdjson's buffers are several times the
// input and a thread that once parsed 8 MiB should not hold on to them.
class parser_lease {
 public:
  static constexpr size_t max_shared_body = size_t{1} << 20;
  explicit parser_lease(size_t body_size);
  dom::parser& get() { return own_ ? *own_ : *shared_; }

 private:
  dom::parser* shared_ = nullptr;
  std::unique_ptr<dom::parser> own_;
};

std::string required_model(const object_fields& body, const param_path& root);

// `messages` of chat (and of /tokenize): roles, string or text-part content, names.
std::vector<chat_message> parse_messages(dom::element value, const param_path& path);

// Fields chat and completions share: temperature, top_p, top_k, min_p, the penalties, seed, n,
// stop and logit_bias.
void parse_sampling_common(const object_fields& body, const param_path& root, sampling_params& out);

// `stream` and `stream_options` (rejected unless stream is true, as OpenAI does).
void parse_stream(const object_fields& body, const param_path& root, bool& stream,
                  stream_options& options);

// A prompt as completions and embeddings accept it: a string, a list of strings, a list of
// token ids, or a list of such lists. Empty strings and lists are refused when allow_empty is
// false (embeddings); at most max_items prompts.
std::vector<prompt> parse_prompts(dom::element value, const param_path& path, bool allow_empty,
                                  size_t max_items);

std::vector<int32_t> parse_token_list(dom::array array, const param_path& path);

std::optional<std::string> optional_string(const object_fields& body, const param_path& path);

}  // namespace moat::openai::detail
