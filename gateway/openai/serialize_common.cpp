// Shared response fragments: the identity head, usage and both logprob shapes.
#include "openai/serialize_common.h"

#include <charconv>

#include "openai/json_write.h"

namespace moat::openai::detail {
namespace {

// The raw bytes of a token: `bytes` when the backend gave them, else the token text itself
// (which may be part of a UTF-8 character; the string field then shows U+FFFD).
void append_bytes(json_out& out, const token_logprob& token) {
  out += '[';
  bool first = true;
  auto add = [&](uint8_t byte) {
    if (!first) out += ',';
    first = false;
    append_uint(out, byte);
  };
  if (!token.bytes.empty()) {
    for (uint8_t byte : token.bytes) add(byte);
  } else {
    for (char c : token.token) add(static_cast<uint8_t>(c));
  }
  out += ']';
}

void append_token_fields(json_out& out, const token_logprob& token) {
  out += "\"token\":";
  append_json_string(out, token.token);
  out += ",\"logprob\":";
  append_logprob(out, token.logprob);
  out += ",\"bytes\":";
  append_bytes(out, token);
}

// `created` is the same number for every response and chunk made within a second, so its text
// is kept per thread instead of converted each time (~170 instructions for a 10-digit time).
void append_created(json_out& out, int64_t created) {
  thread_local int64_t last = 0;
  thread_local char text[24] = {'0'};
  thread_local size_t size = 1;
  if (created != last) {
    size = static_cast<size_t>(std::to_chars(text, text + sizeof text, created).ptr - text);
    last = created;
  }
  out.append(text, size);
}

}  // namespace

void append_head(json_out& out, const response_meta& meta, std::string_view object) {
  if (meta.id_plain) {
    out += "{\"id\":\"";
    out += meta.id;
    out += "\",\"object\":\"";
  } else {
    out += "{\"id\":";
    append_json_string(out, meta.id);
    out += ",\"object\":\"";
  }
  out += object;
  out += "\",\"created\":";
  append_created(out, meta.created);
  out += ",\"model\":";
  append_json_string(out, meta.model);
  if (!meta.system_fingerprint.empty()) {
    out += ",\"system_fingerprint\":";
    append_json_string(out, meta.system_fingerprint);
  }
}

void append_usage(json_out& out, const usage_counts& usage) {
  out += "{\"prompt_tokens\":";
  append_uint(out, usage.prompt_tokens);
  out += ",\"completion_tokens\":";
  append_uint(out, usage.completion_tokens);
  out += ",\"total_tokens\":";
  append_uint(out, usage.prompt_tokens + usage.completion_tokens);
  out += '}';
}

void append_chat_logprobs(json_out& out, std::span<const logprob_item> items) {
  out += "{\"content\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    out += '{';
    append_token_fields(out, items[i].chosen);
    out += ",\"top_logprobs\":[";
    for (size_t j = 0; j < items[i].top.size(); ++j) {
      if (j != 0) out += ',';
      out += '{';
      append_token_fields(out, items[i].top[j]);
      out += '}';
    }
    out += "]}";
  }
  out += "],\"refusal\":null}";
}

void append_completion_logprobs(json_out& out, std::span<const logprob_item> items,
                                uint32_t text_offset) {
  out += "{\"tokens\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    append_json_string(out, items[i].chosen.token);
  }
  out += "],\"token_logprobs\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    append_logprob(out, items[i].chosen.logprob);
  }
  // One {token: logprob} map per position. With logprobs=0 there are no alternatives, so the
  // chosen token alone is listed, as vLLM does.
  out += "],\"top_logprobs\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    out += '{';
    const auto& top = items[i].top;
    if (top.empty()) {
      append_json_string(out, items[i].chosen.token);
      out += ':';
      append_logprob(out, items[i].chosen.logprob);
    }
    for (size_t j = 0; j < top.size(); ++j) {
      if (j != 0) out += ',';
      append_json_string(out, top[j].token);
      out += ':';
      append_logprob(out, top[j].logprob);
    }
    out += '}';
  }
  out += "],\"text_offset\":[";
  uint64_t offset = text_offset;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    append_uint(out, offset);
    offset += items[i].chosen.bytes.empty() ? items[i].chosen.token.size()
                                            : items[i].chosen.bytes.size();
  }
  out += "]}";
}

}  // namespace moat::openai::detail
