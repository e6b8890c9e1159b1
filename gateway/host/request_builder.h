// Builds the C ABI's moat_request from a parsed OpenAI request. The moat_request only points:
// strings and arrays stay owned by the parsed request and by this builder, both of which must
// outlive the submit() call (a local in the handler does).
//
//   moat::host::request_builder b;
//   moat_request& r = b.chat(parsed_chat, raw_body);
//   auto outcome = backend.submit(r, sink, strand);
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "moat/backend.h"
#include "openai/protocol.h"

namespace moat::host {

// The request body as the backend may see it: `messages` (chat; each content as a plain string),
// or the prompt field `prompt_key` (completions: "prompt", embeddings: "input") replaced by the
// given, already redacted, texts, and `model` set to `model` (a policy may route). Every other
// field is kept as sent. Nothing of the original text survives in a replaced field.
std::string redacted_body_json(std::string_view body, std::string_view model,
                               const std::vector<openai::chat_message>* messages,
                               const std::vector<openai::prompt>* prompts, std::string_view prompt_key);

// `body` with the top-level string field `key` set to `value` (replaced where it was, appended
// otherwise); every other field kept as sent, minified. A body that does not parse as a JSON
// object comes back as an object holding only `key`.
std::string with_string_field(std::string_view body, std::string_view key, std::string_view value);

class request_builder {
 public:
  moat_request& chat(const openai::chat_request& req, std::string_view body_json);
  moat_request& completion(const openai::completion_request& req, std::string_view body_json);
  moat_request& embedding(const openai::embedding_request& req, std::string_view body_json);

  // For /tokenize: the text or the messages.
  moat_tokenize_request& tokenize(const openai::tokenize_request& req);

 private:
  // Points the messages at inline slots (a chat of a few turns, the usual case) or at messages_.
  const moat_message* fill_messages(const std::vector<openai::chat_message>& messages);
  void fill_prompts(const std::vector<openai::prompt>& prompts);
  void fill_sampling(const openai::sampling_params& s);

  moat_request request_{};
  moat_tokenize_request tokenize_{};
  std::array<moat_message, 4> inline_messages_{};
  std::vector<moat_message> messages_;  // more messages than fit inline
  std::vector<moat_prompt> prompts_;
  std::vector<moat_str> stop_;
  std::vector<moat_logit_bias> logit_bias_;
};

}  // namespace moat::host
