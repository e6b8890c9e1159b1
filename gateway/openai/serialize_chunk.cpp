// Stream chunks (CreateChatCompletionStreamResponse and the completion chunk shape): as JSON, or
// appended to a stream's buffer already framed as a server-sent event.
#include <algorithm>
#include <cstring>

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

// The closing of a plain delta (at most 56 bytes) is kept in the first close_room bytes of the
// framing's text, so that it is copied as one fixed-size block; the scratch room after the
// opening holds a quoted short text (at most 18 bytes) and that block.
constexpr size_t close_room = 64;
constexpr size_t scratch_room = 18 + close_room;
constexpr std::string_view chat_close = "},\"logprobs\":null,\"finish_reason\":null}]";
constexpr std::string_view completion_close = ",\"logprobs\":null,\"finish_reason\":null}]";
constexpr std::string_view usage_null = ",\"usage\":null";
constexpr std::string_view event_end = "}\n\n";
static_assert(std::max(chat_close.size(), completion_close.size()) + usage_null.size() +
                  event_end.size() <=
              close_room);

chunk_framing::chunk_framing(const response_meta& meta, bool chat, bool include_usage)
    : chat_(chat), include_usage_(include_usage) {
  // Room for all of it at once (json_out reserves only past its own buffer's size).
  text_.reserve(close_room + 160 + meta.id.size() + meta.model.size() +
                meta.system_fingerprint.size() + scratch_room);
  // What append_chat_chunk_rest / append_completion_chunk_rest and append_chunk_tail write
  // after the text of a plain delta of choice 0, then before it.
  text_ += chat ? chat_close : completion_close;
  if (include_usage) text_ += usage_null;
  text_ += event_end;
  close_size_ = static_cast<uint32_t>(text_.size());
  text_.resize(close_room, ' ');
  {
    json_out out(text_);
    out += "data: ";
    append_head(out, meta, chunk_object(chat));
    out.done();
  }
  head_end_ = static_cast<uint32_t>(text_.size());
  text_ += chat ? ",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                : ",\"choices\":[{\"index\":0,\"text\":";
  open_end_ = static_cast<uint32_t>(text_.size());
  text_.resize(open_end_ + scratch_room);
}

void chunk_framing::append_plain(std::string& events, std::string_view delta_text) {
  char* const base = text_.data();
  const size_t size = delta_text.size();
  uint64_t first;
  uint64_t last;
  if (short_plain_words(delta_text, first, last)) {
    // The usual delta: its quoted text and the closing go into the scratch room right after
    // the opening, and the event leaves in one append, with no copy of the ~170-byte opening.
    char* at = base + open_end_;
    store_short_string(at, size, first, last);
    std::memcpy(at + size + 2, base, close_room);
    events.append(base + close_room, open_end_ - close_room + size + 2 + close_size_);
    return;
  }
  json_out out(events, open_end_ - close_room + size + close_size_ + 8);
  out.append(base + close_room, open_end_ - close_room);
  append_json_string_escaped(out, delta_text);
  out.append(base, close_size_);
  out.done();
}

void chunk_framing::append_event(std::string& events, const chunk_delta& delta) {
  // A chat choice's first chunk names the role, and a later one without text has an empty
  // delta: neither is plain.
  const bool plain = delta.index == 0 && !delta.has_logprobs && delta.finish_reason.empty() &&
                     (!chat_ || (!delta.first && !delta.text.empty()));
  if (plain) return append_plain(events, delta.text);
  json_out out(events, chunk_size_hint(head_end_, delta) + 8);
  out.append(text_.data() + close_room, head_end_ - close_room);
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
