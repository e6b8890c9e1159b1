// serving_backend's request side: ABI requests → scheduler requests (prompt rendering and
// tokenization, sampling parameters, cache_salt) and scheduler events → moat_event callbacks.
#include <cstddef>
#include <random>
#include <stdexcept>

#include <fmt/format.h>
#include <simdjson.h>

#include "engine/detokenizer.h"
#include "engine/serving.h"

namespace moat::engine {

namespace {

std::string to_string(moat_str s) { return s.size ? std::string(s.data, s.size) : std::string(); }
moat_str to_str(std::string_view s) { return {s.data(), s.size()}; }

class detokenizer_decoder : public stream_decoder {
 public:
  detokenizer_decoder(const tokenizer& tok, detokenizer_options opts)
      : detok_(tok, opts) {}
  std::string push(int32_t token) override { return detok_.push(token); }
  std::string finish() override { return detok_.finish(); }

 private:
  detokenizer detok_;
};

// Keeps the host's callback and translates. The event structs point into locals that live
// for the duration of the callback only, as backend.h allows.
class abi_sink : public request_sink {
 public:
  abi_sink(const tokenizer& tok, moat_event_fn fn, void* user_data)
      : tok_(tok), fn_(fn), user_(user_data) {}

  void on_delta(uint32_t index, std::string_view text, std::span<const int32_t> tokens,
                std::span<const logprob_entry> logprobs) override {
    moat_event e = blank(MOAT_EVENT_DELTA);
    e.index = index;
    e.text = to_str(text);
    e.tokens = tokens.data();
    e.token_count = tokens.size();
    std::vector<moat_logprob_entry> entries;
    std::vector<std::vector<moat_token_logprob>> tops;
    if (!logprobs.empty()) {
      entries.reserve(logprobs.size());
      tops.reserve(logprobs.size());
      for (const auto& lp : logprobs) {
        auto& top = tops.emplace_back();
        for (const auto& t : lp.top) top.push_back(token(t));
        entries.push_back({token(lp.chosen), top.data(), top.size()});
      }
      e.logprobs = entries.data();
      e.logprob_count = entries.size();
    }
    fn_(user_, &e);
  }

  void on_finish(uint32_t index, finish_reason reason) override {
    moat_event e = blank(MOAT_EVENT_FINISH);
    e.index = index;
    e.finish_reason = reason == finish_reason::length ? MOAT_FINISH_LENGTH : MOAT_FINISH_STOP;
    fn_(user_, &e);
  }

  void on_embedding(uint32_t index, std::span<const float> embedding) override {
    moat_event e = blank(MOAT_EVENT_EMBEDDING);
    e.index = index;
    e.embedding = embedding.data();
    e.embedding_dim = embedding.size();
    fn_(user_, &e);
  }

  void on_done(const usage_counts& usage) override {
    moat_event e = blank(MOAT_EVENT_DONE);
    e.usage = {usage.prompt_tokens, usage.completion_tokens};
    fn_(user_, &e);
  }

  void on_error(engine_status code, std::string_view message) override {
    moat_event e = blank(MOAT_EVENT_ERROR);
    e.error_code = to_moat_status(code);
    e.error_message = to_str(message);
    fn_(user_, &e);
  }

 private:
  static moat_event blank(moat_event_kind kind) {
    moat_event e{};
    e.struct_size = sizeof e;
    e.kind = kind;
    return e;
  }
  moat_token_logprob token(const token_logprob& t) const {
    // token_bytes returns storage owned by the tokenizer, valid for the backend's life.
    return {t.token, to_str(tok_.token_bytes(t.token)), t.logprob};
  }

  const tokenizer& tok_;
  moat_event_fn fn_;
  void* user_;
};

}  // namespace

std::vector<int32_t> serving_backend::prompt_tokens(const moat_prompt& p, std::string* echo) {
  if (p.text.size > 0 || p.token_count == 0) {
    std::string text = to_string(p.text);
    if (echo) *echo = text;
    return tokenizer_->encode(text, /*add_special=*/true);
  }
  std::vector<int32_t> ids(p.tokens, p.tokens + p.token_count);  // as given: no BOS added
  if (echo) *echo = tokenizer_->decode(ids, /*skip_special=*/false);
  return ids;
}

uint64_t serving_backend::pick_seed() {
  if (options_.seed) return mix_seed(*options_.seed + seed_counter_.fetch_add(1));
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

moat_status to_moat_status(engine_status s) {
  switch (s) {
    case engine_status::ok: return MOAT_OK;
    case engine_status::invalid_argument: return MOAT_ERR_INVALID_ARGUMENT;
    case engine_status::context_length: return MOAT_ERR_CONTEXT_LENGTH;
    case engine_status::busy: return MOAT_ERR_BUSY;
    case engine_status::internal: return MOAT_ERR_INTERNAL;
    case engine_status::unavailable: return MOAT_ERR_UNAVAILABLE;
    case engine_status::cancelled: return MOAT_ERR_CANCELLED;
  }
  return MOAT_ERR_INTERNAL;
}

bool tokenizer_codec::is_end_of_generation(int32_t token) const {
  return tok_.is_end_of_generation(token);
}

std::unique_ptr<stream_decoder> tokenizer_codec::make_decoder(bool continuation) const {
  detokenizer_options opts;
  // A completion continues its prompt: the answer's leading space is real text there. A chat
  // answer starts fresh, so the SentencePiece leading space is dropped as decode() does.
  if (continuation) opts.strip_leading_space = false;
  return std::make_unique<detokenizer_decoder>(tok_, opts);
}

std::shared_ptr<request_sink> make_abi_sink(const tokenizer& tok, moat_event_fn fn,
                                                    void* user_data) {
  return std::make_shared<abi_sink>(tok, fn, user_data);
}

std::vector<int32_t> serving_backend::chat_prompt(const moat_message* messages, size_t count,
                                                  bool add_generation_prompt) {
  std::vector<chat_message> msgs;
  msgs.reserve(count);
  for (size_t i = 0; i < count; ++i)
    msgs.push_back({to_string(messages[i].role), to_string(messages[i].content),
                    to_string(messages[i].name)});
  chat_render_options opt;
  opt.add_generation_prompt = add_generation_prompt;
  opt.bos_token = tokenizer_->bos_text();
  opt.eos_token = tokenizer_->eos_text();
  std::string text;
  try {
    text = chat_->render(msgs, opt);
  } catch (const chat_template_error& e) {
    throw std::invalid_argument(std::string("the chat template rejected the messages: ") + e.what());
  }
  auto ids = tokenizer_->encode(text, /*add_special=*/false);
  const int32_t bos = tokenizer_->bos_id();
  if (tokenizer_->adds_bos() && bos >= 0 && (ids.empty() || ids.front() != bos))
    ids.insert(ids.begin(), bos);
  return ids;
}

generate_request serving_backend::translate_request(const moat_request& req) {
  generate_request out;
  out.id = req.request_id;
  switch (req.kind) {
    case MOAT_REQUEST_CHAT:
      if (req.message_count == 0) throw std::invalid_argument("messages must not be empty");
      out.prompts.push_back(chat_prompt(req.messages, req.message_count, req.add_generation_prompt != 0));
      break;
    case MOAT_REQUEST_COMPLETION:
    case MOAT_REQUEST_EMBEDDING: {
      if (req.prompt_count == 0) throw std::invalid_argument("the prompt must not be empty");
      const bool echo = req.kind == MOAT_REQUEST_COMPLETION && req.echo;
      for (size_t i = 0; i < req.prompt_count; ++i) {
        std::string echo_text;
        out.prompts.push_back(prompt_tokens(req.prompts[i], echo ? &echo_text : nullptr));
        if (echo) out.echo_text.push_back(std::move(echo_text));
        // As vLLM's incremental detokenizer does: after visible prompt text the answer's leading
        // space is kept; after a prompt of special tokens only (BOS) it is stripped.
        bool visible = echo;
        for (int32_t t : out.prompts.back()) visible = visible || !tokenizer_->is_special(t);
        out.continuation.push_back(visible);
      }
      out.embedding = req.kind == MOAT_REQUEST_EMBEDDING;
      break;
    }
    default:
      throw std::invalid_argument("unknown request kind");
  }
  out.cache_salt = cache_salt(req);
  if (out.embedding) return out;

  const moat_sampling& s = req.sampling;
  auto& p = out.sampling;
  p.temperature = s.temperature;
  p.top_p = s.top_p;
  p.top_k = s.top_k;
  p.min_p = s.min_p;
  p.presence_penalty = s.presence_penalty;
  p.frequency_penalty = s.frequency_penalty;
  p.seed = s.has_seed ? s.seed : pick_seed();
  p.max_tokens = s.max_tokens;
  p.n = s.n == 0 ? 1 : s.n;
  p.logprobs = s.logprobs;
  if (p.temperature < 0.0f) throw std::invalid_argument("temperature must not be negative");
  if (p.logprobs > 20) throw std::invalid_argument("top_logprobs must be at most 20");
  for (size_t i = 0; i < s.stop_count; ++i) p.stop.push_back(to_string(s.stop[i]));
  for (size_t i = 0; i < s.logit_bias_count; ++i)
    p.logit_bias.emplace_back(s.logit_bias[i].token, s.logit_bias[i].bias);
  return out;
}


// The request body's `cache_salt` (vLLM's field; with API keys the gateway puts a per-key salt
// there, docs/security.md): a string, absent or null = "". Anything else is the client's error.
std::string cache_salt(const moat_request& req) {
  if (req.struct_size < offsetof(moat_request, body_json) + sizeof(moat_str)) return {};
  if (req.body_json.data == nullptr || req.body_json.size == 0) return {};
  simdjson::dom::parser parser;
  simdjson::padded_string padded(std::string_view(req.body_json.data, req.body_json.size));
  simdjson::dom::object obj;
  if (parser.parse(padded).get_object().get(obj) != simdjson::SUCCESS) return {};
  simdjson::dom::element v;
  if (obj["cache_salt"].get(v) != simdjson::SUCCESS || v.is_null()) return {};
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) throw std::invalid_argument("cache_salt must be a string");
  return std::string(s);
}

}  // namespace moat::engine
