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
namespace {

// What follows the head in chat's first chunk of choice 0 (then its text and a plain delta's
// closing), and in choice 0's closing chunk (then its finish_reason and the closing here).
constexpr std::string_view chat_role_open =
    ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":";
constexpr std::string_view chat_finish_open =
    ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":";
constexpr std::string_view completion_finish_open =
    ",\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":";
// The two closings after a finish_reason (without, then with "usage":null), each padded to one
// fixed-size block, and their lengths.
constexpr char finish_close_blocks[2][close_room] = {"}]}\n\n", "}],\"usage\":null}\n\n"};
constexpr size_t finish_close_sizes[2] = {std::string_view(finish_close_blocks[0]).size(),
                                          std::string_view(finish_close_blocks[1]).size()};
static_assert(finish_close_sizes[1] < close_room);

// Appends `head`, `opening`, a short plain text (short_plain_words: `size` bytes as `first` and
// `last`) quoted, and the `closing_size` bytes of `closing` (readable for close_room bytes):
// the part after the head is assembled on the stack with fixed-size copies (an opening is a
// constant once inlined), and the event leaves in two appends.
[[gnu::always_inline]] inline void append_short(std::string& events, std::string_view head,
                                                std::string_view opening, size_t size,
                                                uint64_t first, uint64_t last, const char* closing,
                                                size_t closing_size) {
  constexpr size_t room = 96 + 18 + close_room;
  static_assert(std::max({chat_role_open.size(), chat_finish_open.size(),
                          completion_finish_open.size()}) <= 96);
  char rest[room];
  std::memcpy(rest, opening.data(), opening.size());
  store_short_string(rest + opening.size(), size, first, last);
  std::memcpy(rest + opening.size() + size + 2, closing, close_room);
  events.append(head.data(), head.size());
  events.append(rest, opening.size() + size + 2 + closing_size);
}

// The last framing made on this thread for an id that needs no escaping, and what it was made
// from. Streams a thread starts within the same second for the same model differ only in their
// id, which sits at a fixed offset (after the closing and `data: {"id":"`).
struct framing_memo {
  std::string text;  // chunk_framing::text_ with that id
  uint32_t close_size = 0;
  uint32_t head_end = 0;
  uint32_t open_end = 0;
  int64_t created = 0;
  std::string model;
  std::string system_fingerprint;
  size_t id_size = 0;
  bool chat = true;
  bool include_usage = false;
  bool valid = false;

  bool fits(const response_meta& meta, bool chat_, bool include_usage_) const {
    return valid && meta.id_plain && meta.id.size() == id_size && meta.created == created &&
           chat_ == chat && include_usage_ == include_usage && meta.model == model &&
           meta.system_fingerprint == system_fingerprint;
  }
};

constexpr size_t plain_id_at = close_room + std::string_view("data: {\"id\":\"").size();

}  // namespace

chunk_framing::chunk_framing(const response_meta& meta, bool chat, bool include_usage)
    : chat_(chat), include_usage_(include_usage) {
  // The usual stream is the last one made here with another id: its text is copied and the id
  // written over (one allocation and two copies) instead of written again (~800 instructions,
  // most of them the head). A thread switching between models rebuilds at each switch.
  thread_local framing_memo memo;
  if (memo.fits(meta, chat, include_usage)) {
    text_ = memo.text;
    std::memcpy(text_.data() + plain_id_at, meta.id.data(), meta.id.size());
    close_size_ = memo.close_size;
    head_end_ = memo.head_end;
    open_end_ = memo.open_end;
    return;
  }
  build(meta);
  if (!meta.id_plain) return;
  memo.text = text_;
  memo.close_size = close_size_;
  memo.head_end = head_end_;
  memo.open_end = open_end_;
  memo.created = meta.created;
  memo.model = meta.model;
  memo.system_fingerprint = meta.system_fingerprint;
  memo.id_size = meta.id.size();
  memo.chat = chat;
  memo.include_usage = include_usage;
  memo.valid = true;
}

void chunk_framing::build(const response_meta& meta) {
  const bool chat = chat_;
  // Room for all of it at once (json_out reserves only past its own buffer's size).
  text_.reserve(close_room + 160 + meta.id.size() + meta.model.size() +
                meta.system_fingerprint.size() + scratch_room);
  // What append_chat_chunk_rest / append_completion_chunk_rest and append_chunk_tail write
  // after the text of a plain delta of choice 0, then before it.
  text_ += chat ? chat_close : completion_close;
  if (include_usage_) text_ += usage_null;
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
  // Choice 0's two other usual chunks, each once per stream: chat's first (the role and the
  // first text; its closing is a plain delta's) and the closing one (a finish_reason without
  // text). The head is copied from the framing and the rest assembled on the stack, instead of
  // the general path's writer (~400 instructions each).
  if (delta.index == 0 && !delta.has_logprobs) {
    const std::string_view head(text_.data() + close_room, head_end_ - close_room);
    uint64_t first;
    uint64_t last;
    if (chat_ && delta.first && delta.finish_reason.empty() &&
        short_plain_words(delta.text, first, last)) {
      return append_short(events, head, chat_role_open, delta.text.size(), first, last,
                          text_.data(), close_size_);
    }
    if (!delta.first && delta.text.empty() && !delta.finish_reason.empty() &&
        short_plain_words(delta.finish_reason, first, last)) {
      const char* closing = finish_close_blocks[include_usage_ ? 1 : 0];
      const size_t closing_size = finish_close_sizes[include_usage_ ? 1 : 0];
      const size_t size = delta.finish_reason.size();
      if (chat_) {
        return append_short(events, head, chat_finish_open, size, first, last, closing,
                            closing_size);
      }
      return append_short(events, head, completion_finish_open, size, first, last, closing,
                          closing_size);
    }
  }
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
