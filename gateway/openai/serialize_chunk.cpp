// Stream chunks (CreateChatCompletionStreamResponse and the completion chunk shape). Each is
// framed with sse_data by the caller.
#include "openai/json_write.h"
#include "openai/serialize_common.h"

namespace moat::openai {
namespace {

using namespace detail;

// `"finish_reason":null` until the choice's last chunk, then its reason; with include_usage
// the chunk also carries `"usage":null` so clients see the field on every chunk.
void append_chunk_tail(std::string& out, const chunk_delta& delta, bool include_usage) {
  out += ",\"finish_reason\":";
  if (delta.finish_reason.empty()) {
    out += "null";
  } else {
    append_json_string(out, delta.finish_reason);
  }
  out += "}]";
  if (include_usage) out += ",\"usage\":null";
  out += '}';
}

}  // namespace

std::string chat_chunk_json(const response_meta& meta, const chunk_delta& delta,
                            bool include_usage) {
  std::string out;
  out.reserve(192 + meta.id.size() + meta.model.size() + delta.text.size() +
              delta.logprobs.size() * 96);
  append_head(out, meta, "chat.completion.chunk");
  out += ",\"choices\":[{\"index\":";
  append_uint(out, delta.index);
  // The first chunk of a choice names the role (with content, "" when there is no text yet);
  // a later chunk without text (the closing one) has an empty delta, as OpenAI sends.
  out += ",\"delta\":{";
  if (delta.first) {
    out += "\"role\":\"assistant\",\"content\":";
    append_json_string(out, delta.text);
  } else if (!delta.text.empty()) {
    out += "\"content\":";
    append_json_string(out, delta.text);
  }
  out += "},\"logprobs\":";
  if (delta.has_logprobs) {
    append_chat_logprobs(out, delta.logprobs);
  } else {
    out += "null";
  }
  append_chunk_tail(out, delta, include_usage);
  return out;
}

std::string chat_usage_chunk_json(const response_meta& meta, const usage_counts& usage) {
  std::string out;
  out.reserve(256 + meta.id.size() + meta.model.size());
  append_head(out, meta, "chat.completion.chunk");
  out += ",\"choices\":[],\"usage\":";
  append_usage(out, usage);
  out += '}';
  return out;
}

std::string completion_chunk_json(const response_meta& meta, const chunk_delta& delta,
                                  bool include_usage) {
  std::string out;
  out.reserve(192 + meta.id.size() + meta.model.size() + delta.text.size() +
              delta.logprobs.size() * 96);
  append_head(out, meta, "text_completion");
  out += ",\"choices\":[{\"index\":";
  append_uint(out, delta.index);
  out += ",\"text\":";
  append_json_string(out, delta.text);
  out += ",\"logprobs\":";
  if (delta.has_logprobs) {
    append_completion_logprobs(out, delta.logprobs, delta.text_offset);
  } else {
    out += "null";
  }
  append_chunk_tail(out, delta, include_usage);
  return out;
}

std::string completion_usage_chunk_json(const response_meta& meta, const usage_counts& usage) {
  std::string out;
  out.reserve(256 + meta.id.size() + meta.model.size());
  append_head(out, meta, "text_completion");
  out += ",\"choices\":[],\"usage\":";
  append_usage(out, usage);
  out += '}';
  return out;
}

}  // namespace moat::openai
