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
// instead: chunk_framing::append_event).
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

chunk_framing::chunk_framing(const response_meta& meta, bool chat, bool include_usage)
    : chat_(chat), include_usage_(include_usage) {
  // Room for all of it at once (json_out reserves only past its own buffer's size).
  text_.reserve(224 + meta.id.size() + meta.model.size() + meta.system_fingerprint.size());
  {
    json_out out(text_);
    out += "data: ";
    append_head(out, meta, chunk_object(chat));
    out.done();
  }
  head_end_ = text_.size();
  // What append_chat_chunk_rest / append_completion_chunk_rest and append_chunk_tail write
  // around the text of a plain delta of choice 0.
  text_ += chat ? ",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                : ",\"choices\":[{\"index\":0,\"text\":";
  open_end_ = text_.size();
  text_ += chat ? "},\"logprobs\":null,\"finish_reason\":null}]"
                : ",\"logprobs\":null,\"finish_reason\":null}]";
  if (include_usage) text_ += ",\"usage\":null";
  text_ += "}\n\n";
}

void chunk_framing::append_plain(std::string& events, std::string_view delta_text) const {
  const std::string_view text(text_);
  json_out out(events, text.size() + delta_text.size() + 8);
  out += text.substr(0, open_end_);
  append_json_string(out, delta_text);
  out += text.substr(open_end_);
  out.done();
}

void chunk_framing::append_event(std::string& events, const chunk_delta& delta) const {
  const std::string_view text(text_);
  // A chat choice's first chunk names the role, and a later one without text has an empty
  // delta: neither is plain.
  const bool plain = delta.index == 0 && !delta.has_logprobs && delta.finish_reason.empty() &&
                     (!chat_ || (!delta.first && !delta.text.empty()));
  if (plain) return append_plain(events, delta.text);
  json_out out(events, chunk_size_hint(head_end_, delta) + 8);
  out += text.substr(0, head_end_);
  if (chat_) {
    append_chat_chunk_rest(out, delta, include_usage_);
  } else {
    append_completion_chunk_rest(out, delta, include_usage_);
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
