// Stream chunks (CreateChatCompletionStreamResponse and the completion chunk shape): as JSON, or
// appended to a stream's buffer already framed as a server-sent event.
#include "openai/json_write.h"
#include "openai/serialize_common.h"

namespace moat::openai {
namespace {

using namespace detail;

// `"finish_reason":null` until the choice's last chunk, then its reason; with include_usage
// the chunk also carries `"usage":null` so clients see the field on every chunk.
void append_chunk_tail(json_out& out, const chunk_delta& delta, bool include_usage) {
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

// Everything after the head: the choice and, with include_usage, "usage":null.
void append_chat_chunk_rest(json_out& out, const chunk_delta& delta, bool include_usage) {
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
}

void append_completion_chunk_rest(json_out& out, const chunk_delta& delta, bool include_usage) {
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
}

size_t chunk_size_hint(size_t head_size, const chunk_delta& delta) {
  return 128 + head_size + delta.text.size() + delta.logprobs.size() * 96;
}

constexpr std::string_view chunk_object(bool chat) {
  return chat ? "chat.completion.chunk" : "text_completion";
}

// One chunk of either kind, whole (the streaming path appends events to a shared buffer
// instead: append_chunk_event).
std::string chunk_json(const response_meta& meta, const chunk_delta& delta, bool include_usage,
                       bool chat) {
  std::string text;
  json_out out(text, chunk_size_hint(64 + meta.id.size() + meta.model.size(), delta));
  append_head(out, meta, chunk_object(chat));
  if (chat) {
    append_chat_chunk_rest(out, delta, include_usage);
  } else {
    append_completion_chunk_rest(out, delta, include_usage);
  }
  out.done();
  return text;
}

// The last chunk with include_usage: no choices, the counts.
std::string usage_chunk_json(const response_meta& meta, const usage_counts& usage, bool chat) {
  std::string text;
  json_out out(text, 256 + meta.id.size() + meta.model.size());
  append_head(out, meta, chunk_object(chat));
  out += ",\"choices\":[],\"usage\":";
  append_usage(out, usage);
  out += '}';
  out.done();
  return text;
}

}  // namespace

std::string chat_chunk_json(const response_meta& meta, const chunk_delta& delta,
                            bool include_usage) {
  return chunk_json(meta, delta, include_usage, true);
}

std::string completion_chunk_json(const response_meta& meta, const chunk_delta& delta,
                                  bool include_usage) {
  return chunk_json(meta, delta, include_usage, false);
}

std::string chunk_head(const response_meta& meta, bool chat) {
  std::string head;
  json_out out(head, 96 + meta.id.size() + meta.model.size() + meta.system_fingerprint.size());
  append_head(out, meta, chunk_object(chat));
  out.done();
  return head;
}

void append_chunk_event(std::string& events, std::string_view head, bool chat,
                        const chunk_delta& delta, bool include_usage) {
  json_out out(events, chunk_size_hint(head.size(), delta) + 8);
  out += "data: ";
  out += head;
  if (chat) {
    append_chat_chunk_rest(out, delta, include_usage);
  } else {
    append_completion_chunk_rest(out, delta, include_usage);
  }
  out += "\n\n";
  out.done();
}

std::string chat_usage_chunk_json(const response_meta& meta, const usage_counts& usage) {
  return usage_chunk_json(meta, usage, true);
}

std::string completion_usage_chunk_json(const response_meta& meta, const usage_counts& usage) {
  return usage_chunk_json(meta, usage, false);
}

}  // namespace moat::openai
