#include "host/request_builder.h"

#include <simdjson.h>

#include <cstring>

namespace moat::host {

namespace {

moat_str as_str(std::string_view s) { return moat_str{s.data(), s.size()}; }

void reset(moat_request& r) {
  std::memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.sampling.struct_size = sizeof r.sampling;
  r.sampling.max_tokens = -1;
  r.sampling.n = 1;
  r.sampling.logprobs = -1;
  r.sampling.top_p = 1;
  r.sampling.temperature = 1;
}

void append_prompt(std::string& out, const openai::prompt& p) {
  if (!p.is_tokens) return openai::append_json_string(out, p.text);
  out += '[';
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(p.tokens[i]);
  }
  out += ']';
}

}  // namespace

std::string redacted_body_json(std::string_view body, std::string_view model,
                               const std::vector<openai::chat_message>* messages,
                               const std::vector<openai::prompt>* prompts, std::string_view prompt_key) {
  std::string out;
  out.reserve(body.size() + 64);
  out += '{';
  bool first = true;
  auto key = [&](std::string_view k) {
    if (!first) out += ',';
    first = false;
    openai::append_json_string(out, k);
    out += ':';
  };
  auto write_model = [&] {
    key("model");
    openai::append_json_string(out, model);
  };
  auto write_messages = [&] {
    key("messages");
    out += '[';
    for (size_t i = 0; i < messages->size(); ++i) {
      const auto& m = (*messages)[i];
      if (i) out += ',';
      out += "{\"role\":";
      openai::append_json_string(out, m.role);
      out += ",\"content\":";
      openai::append_json_string(out, m.content);
      if (!m.name.empty()) {
        out += ",\"name\":";
        openai::append_json_string(out, m.name);
      }
      out += '}';
    }
    out += ']';
  };
  auto write_prompts = [&] {
    key(prompt_key);
    if (prompts->size() == 1) return append_prompt(out, prompts->front());
    out += '[';
    for (size_t i = 0; i < prompts->size(); ++i) {
      if (i) out += ',';
      append_prompt(out, (*prompts)[i]);
    }
    out += ']';
  };
  // The body was parsed successfully before, so this parse succeeds too; should it not, only
  // the rewritten fields are sent (never the original).
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  bool model_done = false, messages_done = false, prompts_done = false;
  if (parser.parse(simdjson::padded_string(body)).get(root) == simdjson::SUCCESS) {
    for (auto field : root) {
      const std::string_view k = field.key;
      if (k == "model") {
        write_model();
        model_done = true;
      } else if (messages && k == "messages") {
        write_messages();
        messages_done = true;
      } else if (prompts && k == prompt_key) {
        write_prompts();
        prompts_done = true;
      } else {
        key(k);
        out += simdjson::minify(field.value);
      }
    }
  }
  if (!model_done) write_model();
  if (messages && !messages_done) write_messages();
  if (prompts && !prompts_done) write_prompts();
  out += '}';
  return out;
}

std::string with_string_field(std::string_view body, std::string_view key, std::string_view value) {
  std::string out;
  out.reserve(body.size() + key.size() + value.size() + 8);
  out += '{';
  bool first = true;
  auto write_key = [&](std::string_view k) {
    if (!first) out += ',';
    first = false;
    openai::append_json_string(out, k);
    out += ':';
  };
  bool written = false;
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(simdjson::padded_string(body)).get(root) == simdjson::SUCCESS) {
    for (auto field : root) {
      const std::string_view k = field.key;
      if (k == key) {
        if (written) continue;  // a duplicate key: the one value we set stands alone
        write_key(k);
        openai::append_json_string(out, value);
        written = true;
      } else {
        write_key(k);
        out += simdjson::minify(field.value);
      }
    }
  }
  if (!written) {
    write_key(key);
    openai::append_json_string(out, value);
  }
  out += '}';
  return out;
}

const moat_message* request_builder::fill_messages(
    const std::vector<openai::chat_message>& messages) {
  moat_message* out = inline_messages_.data();
  if (messages.size() > inline_messages_.size()) {
    messages_.resize(messages.size());
    out = messages_.data();
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    moat_message& mm = out[i];
    std::memset(&mm, 0, sizeof mm);
    mm.struct_size = sizeof mm;
    mm.role = as_str(messages[i].role);
    mm.content = as_str(messages[i].content);
    mm.name = as_str(messages[i].name);
  }
  return out;
}

void request_builder::fill_prompts(const std::vector<openai::prompt>& prompts) {
  prompts_.clear();
  prompts_.reserve(prompts.size());
  for (const auto& p : prompts) {
    moat_prompt mp;
    std::memset(&mp, 0, sizeof mp);
    mp.struct_size = sizeof mp;
    if (p.is_tokens) {
      mp.tokens = p.tokens.data();
      mp.token_count = p.tokens.size();
    } else {
      mp.text = as_str(p.text);
    }
    prompts_.push_back(mp);
  }
}

void request_builder::fill_sampling(const openai::sampling_params& s) {
  auto& out = request_.sampling;
  out.temperature = static_cast<float>(s.temperature);
  out.top_p = static_cast<float>(s.top_p);
  out.top_k = s.top_k;
  out.min_p = static_cast<float>(s.min_p);
  out.presence_penalty = static_cast<float>(s.presence_penalty);
  out.frequency_penalty = static_cast<float>(s.frequency_penalty);
  out.has_seed = s.seed.has_value() ? 1u : 0u;
  out.seed = s.seed.value_or(0);
  out.max_tokens = s.max_tokens ? static_cast<int32_t>(std::min<int64_t>(*s.max_tokens, INT32_MAX)) : -1;
  out.n = static_cast<uint32_t>(s.n < 1 ? 1 : s.n);
  out.logprobs = s.logprobs ? s.top_logprobs : -1;
  stop_.clear();
  for (const auto& st : s.stop) stop_.push_back(as_str(st));
  out.stop = stop_.empty() ? nullptr : stop_.data();
  out.stop_count = stop_.size();
  logit_bias_.clear();
  for (const auto& [token, bias] : s.logit_bias) logit_bias_.push_back(moat_logit_bias{token, bias});
  out.logit_bias = logit_bias_.empty() ? nullptr : logit_bias_.data();
  out.logit_bias_count = logit_bias_.size();
}

moat_request& request_builder::chat(const openai::chat_request& req, std::string_view body_json) {
  reset(request_);
  request_.kind = MOAT_REQUEST_CHAT;
  request_.model = as_str(req.model);
  request_.messages = fill_messages(req.messages);
  request_.message_count = req.messages.size();
  fill_sampling(req.sampling);
  request_.stream = req.stream ? 1u : 0u;
  request_.add_generation_prompt = req.add_generation_prompt ? 1u : 0u;
  request_.body_json = as_str(body_json);
  return request_;
}

moat_request& request_builder::completion(const openai::completion_request& req, std::string_view body_json) {
  reset(request_);
  request_.kind = MOAT_REQUEST_COMPLETION;
  request_.model = as_str(req.model);
  fill_prompts(req.prompts);
  request_.prompts = prompts_.data();
  request_.prompt_count = prompts_.size();
  fill_sampling(req.sampling);
  request_.stream = req.stream ? 1u : 0u;
  request_.echo = req.echo ? 1u : 0u;
  request_.body_json = as_str(body_json);
  return request_;
}

moat_request& request_builder::embedding(const openai::embedding_request& req, std::string_view body_json) {
  reset(request_);
  request_.kind = MOAT_REQUEST_EMBEDDING;
  request_.model = as_str(req.model);
  fill_prompts(req.inputs);
  request_.prompts = prompts_.data();
  request_.prompt_count = prompts_.size();
  request_.body_json = as_str(body_json);
  return request_;
}

moat_tokenize_request& request_builder::tokenize(const openai::tokenize_request& req) {
  std::memset(&tokenize_, 0, sizeof tokenize_);
  tokenize_.struct_size = sizeof tokenize_;
  if (req.prompt) {
    tokenize_.text = as_str(*req.prompt);
  } else {
    tokenize_.messages = fill_messages(req.messages);
    tokenize_.message_count = req.messages.size();
  }
  tokenize_.add_special_tokens = req.add_special_tokens ? 1u : 0u;
  tokenize_.add_generation_prompt = req.add_generation_prompt ? 1u : 0u;
  return tokenize_;
}

}  // namespace moat::host
