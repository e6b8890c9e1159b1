// Whole (non-streamed) response bodies: chat completion, completion, embeddings, models,
// tokenize and detokenize. Written by hand into one std::string: this is the hot path.
#include <cstring>

#include "openai/json_write.h"
#include "openai/serialize_common.h"

namespace moat::openai {
namespace {

using namespace detail;

// A choice always carries a finish_reason in a whole response; a backend that ended without
// naming one stopped naturally.
std::string_view finish_or_stop(const std::string& reason) {
  return reason.empty() ? std::string_view("stop") : std::string_view(reason);
}

size_t text_bytes(std::span<const choice_result> choices) {
  size_t total = 0;
  for (const auto& c : choices) total += c.text.size() + 160 + c.logprobs.size() * 96;
  return total;
}

void append_base64(json_out& out, const unsigned char* data, size_t size) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    const char quad[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63],
                          alphabet[v & 63]};
    out.append(quad, 4);
  }
  if (size - i == 1) {
    const uint32_t v = uint32_t{data[i]} << 16;
    const char quad[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63], '=', '='};
    out.append(quad, 4);
  } else if (size - i == 2) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    const char quad[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63],
                          '='};
    out.append(quad, 4);
  }
}

}  // namespace

std::string chat_completion_json(const response_meta& meta, std::span<const choice_result> choices,
                                 const usage_counts& usage) {
  std::string text;
  json_out out(text, 256 + text_bytes(choices));
  append_head(out, meta, "chat.completion");
  out += ",\"choices\":[";
  for (size_t i = 0; i < choices.size(); ++i) {
    const choice_result& choice = choices[i];
    if (i != 0) out += ',';
    out += "{\"index\":";
    append_uint(out, choice.index);
    out += ",\"message\":{\"role\":\"assistant\",\"content\":";
    append_json_string(out, choice.text);
    out += ",\"refusal\":null},\"logprobs\":";
    if (choice.has_logprobs) {
      append_chat_logprobs(out, choice.logprobs);
    } else {
      out += "null";
    }
    out += ",\"finish_reason\":";
    append_json_string(out, finish_or_stop(choice.finish_reason));
    out += '}';
  }
  out += "],\"usage\":";
  append_usage(out, usage);
  out += '}';
  out.done();
  return text;
}

std::string completion_json(const response_meta& meta, std::span<const choice_result> choices,
                            const usage_counts& usage) {
  std::string text;
  json_out out(text, 256 + text_bytes(choices));
  append_head(out, meta, "text_completion");
  out += ",\"choices\":[";
  for (size_t i = 0; i < choices.size(); ++i) {
    const choice_result& choice = choices[i];
    if (i != 0) out += ',';
    out += "{\"index\":";
    append_uint(out, choice.index);
    out += ",\"text\":";
    append_json_string(out, choice.text);
    out += ",\"logprobs\":";
    if (choice.has_logprobs) {
      append_completion_logprobs(out, choice.logprobs, 0);
    } else {
      out += "null";
    }
    out += ",\"finish_reason\":";
    append_json_string(out, finish_or_stop(choice.finish_reason));
    out += '}';
  }
  out += "],\"usage\":";
  append_usage(out, usage);
  out += '}';
  out.done();
  return text;
}

std::string embeddings_json(const std::string& model, const std::vector<std::vector<float>>& vectors,
                            const std::string& encoding_format, uint64_t prompt_tokens) {
  const bool base64 = encoding_format == "base64";
  size_t floats = 0;
  for (const auto& v : vectors) floats += v.size();
  std::string text;
  json_out out(text, 128 + model.size() + vectors.size() * 48 + floats * (base64 ? 6 : 14));
  out += "{\"object\":\"list\",\"data\":[";
  std::vector<unsigned char> bytes;
  for (size_t i = 0; i < vectors.size(); ++i) {
    if (i != 0) out += ',';
    out += "{\"object\":\"embedding\",\"index\":";
    append_uint(out, i);
    out += ",\"embedding\":";
    const std::vector<float>& vector = vectors[i];
    if (base64) {
      // OpenAI's base64 is the float32 array in little-endian byte order.
      bytes.resize(vector.size() * 4);
      for (size_t k = 0; k < vector.size(); ++k) {
        uint32_t bits = 0;
        std::memcpy(&bits, &vector[k], 4);
        for (int b = 0; b < 4; ++b) bytes[k * 4 + b] = static_cast<unsigned char>(bits >> (8 * b));
      }
      out += '"';
      append_base64(out, bytes.data(), bytes.size());
      out += '"';
    } else {
      out += '[';
      for (size_t k = 0; k < vector.size(); ++k) {
        if (k != 0) out += ',';
        append_float(out, vector[k]);
      }
      out += ']';
    }
    out += '}';
  }
  out += "],\"model\":";
  append_json_string(out, model);
  out += ",\"usage\":{\"prompt_tokens\":";
  append_uint(out, prompt_tokens);
  out += ",\"total_tokens\":";
  append_uint(out, prompt_tokens);
  out += "}}";
  out.done();
  return text;
}

namespace {

void append_model(json_out& out, const model_card& model) {
  out += "{\"id\":";
  append_json_string(out, model.id);
  out += ",\"object\":\"model\",\"created\":";
  append_int(out, model.created);
  out += ",\"owned_by\":";
  append_json_string(out, model.owned_by);
  if (model.max_model_len) {
    out += ",\"max_model_len\":";
    append_uint(out, *model.max_model_len);
  }
  out += '}';
}

}  // namespace

std::string model_json(const model_card& model) {
  std::string text;
  json_out out(text, 128 + model.id.size());
  append_model(out, model);
  out.done();
  return text;
}

std::string model_list_json(const std::vector<model_card>& models) {
  std::string text;
  json_out out(text, 32 + models.size() * 128);
  out += "{\"object\":\"list\",\"data\":[";
  for (size_t i = 0; i < models.size(); ++i) {
    if (i != 0) out += ',';
    append_model(out, models[i]);
  }
  out += "]}";
  out.done();
  return text;
}

std::string tokenize_json(const std::vector<int32_t>& tokens, uint32_t max_model_len) {
  std::string text;
  json_out out(text, 64 + tokens.size() * 8);
  out += "{\"count\":";
  append_uint(out, tokens.size());
  out += ",\"max_model_len\":";
  append_uint(out, max_model_len);
  out += ",\"tokens\":[";
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i != 0) out += ',';
    append_int(out, tokens[i]);
  }
  out += "]}";
  out.done();
  return text;
}

std::string detokenize_json(std::string_view prompt) {
  std::string text;
  json_out out(text, 16 + prompt.size());
  out += "{\"prompt\":";
  append_json_string(out, prompt);
  out += '}';
  out.done();
  return text;
}

}  // namespace moat::openai
