// The OpenAI wire protocol: typed requests parsed (simdjson) and validated, and responses,
// stream chunks and errors serialized to match ../shared/openai/openapi.json field for field.
// Pure functions: no Beast, no backend, no I/O, so every rule here is unit-tested.
//
//   auto parsed = moat::openai::parse_chat_request(body);
//   if (auto* err = std::get_if<moat::openai::api_error>(&parsed)) return error_json(*err);
//   const auto& req = std::get<moat::openai::chat_request>(parsed);
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace moat::openai {

// An error as OpenAI sends it: {"error":{"message","type","param","code"}} with `status`.
struct api_error {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::optional<std::string> param;  // null when no single parameter is at fault
  std::optional<std::string> code;   // e.g. "model_not_found", "context_length_exceeded"
};

api_error invalid_request(std::string message, std::optional<std::string> param = {},
                          std::optional<std::string> code = {});
std::string error_json(const api_error& error);

// ---- requests --------------------------------------------------------------------------------

struct chat_message {
  std::string role;     // system, developer, user, assistant, tool
  std::string content;  // text parts joined with "\n" (image/audio parts rejected with 400)
  std::string name;     // optional
};

// Sampling and output controls common to chat and completions, already range-checked.
struct sampling_params {
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = -1;        // extension (vLLM): -1 = off
  double min_p = 0.0;    // extension (vLLM)
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  std::optional<uint64_t> seed;
  std::optional<int64_t> max_tokens;  // chat: max_completion_tokens or max_tokens
  int n = 1;
  std::vector<std::string> stop;      // at most 4, as OpenAI
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> bias in [-100, 100]
  bool logprobs = false;
  int top_logprobs = 0;               // 0..20
};

struct stream_options {
  bool include_usage = false;
};

struct chat_request {
  std::string model;
  std::vector<chat_message> messages;
  sampling_params sampling;
  bool stream = false;
  stream_options stream_opts;
  bool add_generation_prompt = true;  // extension (vLLM)
  std::optional<std::string> user;
  // What the request asks beyond plain text, read so that a backend unable to honour it is
  // refused instead of silently ignored (the handler decides; see docs/api.md).
  size_t tools = 0;          // `tools` (or the legacy `functions`) offered
  std::string tool_choice;   // "none", "auto", "required" or "function" (a named one); "" without tools
  std::string response_format = "text";  // its `type`: text, json_object, json_schema, ...
  // The body has a top-level `cache_salt` (checked and applied by the gateway: api/cache_salt.h),
  // so that a body without one is not searched for it.
  bool cache_salt = false;
};

// A prompt as OpenAI accepts it: a text or token ids.
struct prompt {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct completion_request {
  std::string model;
  std::vector<prompt> prompts;  // a string, a list of strings, a token list or lists of them
  sampling_params sampling;     // logprobs: the `logprobs` integer (0..5) sets top_logprobs
  bool stream = false;
  stream_options stream_opts;
  bool echo = false;
  std::string suffix;           // accepted only when empty (no fill-in-the-middle)
  std::optional<std::string> user;
  bool cache_salt = false;  // a top-level `cache_salt` is present (as chat_request)
};

struct embedding_request {
  std::string model;
  std::vector<prompt> inputs;
  std::string encoding_format = "float";  // float or base64
  std::optional<int> dimensions;          // rejected with 400 unless equal to the model's
  std::optional<std::string> user;
};

struct tokenize_request {  // vLLM's /tokenize: either prompt or messages
  std::string model;
  std::optional<std::string> prompt;
  std::vector<chat_message> messages;
  bool add_special_tokens = true;
  bool add_generation_prompt = true;
};

struct detokenize_request {
  std::string model;
  std::vector<int32_t> tokens;
};

using chat_parse_result = std::variant<chat_request, api_error>;
using completion_parse_result = std::variant<completion_request, api_error>;
using embedding_parse_result = std::variant<embedding_request, api_error>;
using tokenize_parse_result = std::variant<tokenize_request, api_error>;
using detokenize_parse_result = std::variant<detokenize_request, api_error>;

// Each parser accepts exactly the JSON body of its endpoint. Unknown fields are ignored; a
// missing required field, a wrong type or a value out of range is a 400 naming its `param`.
chat_parse_result parse_chat_request(std::string_view body);
completion_parse_result parse_completion_request(std::string_view body);
embedding_parse_result parse_embedding_request(std::string_view body);
tokenize_parse_result parse_tokenize_request(std::string_view body);
detokenize_parse_result parse_detokenize_request(std::string_view body);

// ---- responses -------------------------------------------------------------------------------

struct token_logprob {
  std::string token;  // the token's text (bytes; serialized as valid UTF-8 with `bytes`)
  std::vector<uint8_t> bytes;
  double logprob = 0;
};

struct logprob_item {
  token_logprob chosen;
  std::vector<token_logprob> top;
};

struct usage_counts {
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
};

// What the gateway collected for one choice of a non-streamed answer.
struct choice_result {
  uint32_t index = 0;
  std::string text;
  std::string finish_reason;  // "stop", "length", "content_filter"
  bool has_logprobs = false;
  std::vector<logprob_item> logprobs;
};

// Identity shared by a response and all its chunks. OWNERSHIP: views; what they show must
// outlive every serializer call that gets the meta (a generation job keeps its own copy of the
// text, so a response's id costs no allocation of its own).
struct response_meta {
  std::string_view id;  // "chatcmpl-…" / "cmpl-…"
  int64_t created = 0;  // unix seconds
  std::string_view model;
  std::string_view system_fingerprint;  // "fp_moat_<version>"
  // The id needs no JSON escaping (the gateway made it: a prefix and letters or digits), so it
  // is copied as it is instead of scanned. False: escaped as any text.
  bool id_plain = false;
};

std::string chat_completion_json(const response_meta& meta, std::span<const choice_result> choices,
                                 const usage_counts& usage);
std::string completion_json(const response_meta& meta, std::span<const choice_result> choices,
                            const usage_counts& usage);

// Stream chunks (the JSON only; frame with sse_data). `role` is sent on a choice's first chunk;
// `finish_reason` is empty until the choice's last chunk. With include_usage every chunk carries
// "usage": null and a final chunk with empty choices carries the counts.
// OWNERSHIP: text, finish_reason and logprobs are views; what they show must outlive the call
// that serializes the delta (a stream serializes each event at once, from the backend's own
// text and tokens), so a delta owns nothing and its destruction costs nothing per event.
struct chunk_delta {
  uint32_t index = 0;
  bool first = false;  // chat: include "role":"assistant"
  std::string_view text;
  std::string_view finish_reason;
  bool has_logprobs = false;
  std::span<const logprob_item> logprobs;
  // Completions: where this chunk's text starts in the choice's whole text, in bytes, so that
  // logprobs.text_offset continues across chunks. Unused by chat.
  uint32_t text_offset = 0;
};
std::string chat_chunk_json(const response_meta& meta, const chunk_delta& delta, bool include_usage);
std::string chat_usage_chunk_json(const response_meta& meta, const usage_counts& usage);
std::string completion_chunk_json(const response_meta& meta, const chunk_delta& delta,
                                  bool include_usage);
std::string completion_usage_chunk_json(const response_meta& meta, const usage_counts& usage);
// The same chunks framed as server-sent events ("data: <json>\n\n") and appended to a stream's
// pending buffer. Every chunk of a stream starts with the same id, object, created, model and
// fingerprint, and most are a plain delta of choice 0 (text only: no role, logprobs nor
// finish_reason), so a stream serializes that shared text once, here, and each event copies it
// instead of writing it again: a plain delta is then three pieces (its opening, its text as a
// JSON string, its closing).
//
//   openai::chunk_framing framing(meta, /*chat=*/true, /*include_usage=*/false);  // per stream
//   framing.append_event(pending, delta);  // per event
class chunk_framing {
 public:
  chunk_framing() = default;
  // A meta with id_plain whose other fields equal the last one's on this thread (the usual
  // stream) copies that framing's text and writes its own id over it.
  chunk_framing(const response_meta& meta, bool chat, bool include_usage);
  // Appends to `out` the same bytes as sse_data(chat_chunk_json(meta, delta, include_usage))
  // (completion_chunk_json for completions). Not const: a plain delta is assembled in the
  // framing's own scratch room.
  void append_event(std::string& out, const chunk_delta& delta);
  // The same for a plain delta of choice 0 (its text only: no role, logprobs nor
  // finish_reason), without building a chunk_delta: the usual event of a stream. The caller
  // knows it is plain: chat never sends a choice's first chunk this way, nor an empty text.
  void append_plain(std::string& out, std::string_view text);

 private:
  void build(const response_meta& meta);  // writes text_ and its offsets from scratch

  // One string (one allocation per stream): a plain delta's closing through "\n\n" (padded to
  // close_room bytes) | "data: " + head | the opening of a plain delta | scratch room, where a
  // short plain text and the closing are written after the opening, so that the whole event
  // is then appended in one piece. Offsets into it:
  std::string text_;
  uint32_t close_size_ = 0;  // [0, close_size_): the closing
  uint32_t head_end_ = 0;    // [close_room, head_end_): "data: " + head
  uint32_t open_end_ = 0;    // [head_end_, open_end_): the opening; then the scratch room
  bool chat_ = true;
  bool include_usage_ = false;
};

// Embeddings: vectors in input order; base64 encodes little-endian float32 as OpenAI does.
std::string embeddings_json(const std::string& model, const std::vector<std::vector<float>>& vectors,
                            const std::string& encoding_format, uint64_t prompt_tokens);

struct model_card {
  std::string id;
  int64_t created = 0;
  std::string owned_by;
  std::optional<uint32_t> max_model_len;  // extension (vLLM)
};
std::string model_json(const model_card& model);
std::string model_list_json(const std::vector<model_card>& models);

std::string tokenize_json(const std::vector<int32_t>& tokens, uint32_t max_model_len);
std::string detokenize_json(std::string_view text);

// ---- server-sent events ----------------------------------------------------------------------

// "data: <json>\n\n". The JSON never contains a raw newline, so one data line suffices.
std::string sse_data(std::string_view json);
inline constexpr std::string_view sse_done = "data: [DONE]\n\n";
// A terminal error in a stream: an `error` object as the data of the last event before [DONE].
std::string sse_error(const api_error& error);

// JSON string escaping (RFC 8259), replacing invalid UTF-8 with U+FFFD.
void append_json_string(std::string& out, std::string_view text);

}  // namespace moat::openai
