// libmoat_cpu.so: the backend.h glue. create() loads the model, tokenizer and chat template and
// starts the scheduler's engine thread; submit/cancel hand work to it; every function is noexcept
// and reports failures as a moat_status plus a message.
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <random>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>
#include <simdjson.h>

#include "cpu_backend.h"
#include "engine/detokenizer.h"
#include "cpu_runner.h"
#include "engine/model_error.h"
#include "engine/tokenizer_loaders.h"

namespace moat::cpu {

namespace {

std::string to_string(moat_str s) { return s.size ? std::string(s.data, s.size) : std::string(); }
moat_str to_str(std::string_view s) { return {s.data(), s.size()}; }

class detokenizer_decoder : public engine::stream_decoder {
 public:
  detokenizer_decoder(const engine::tokenizer& tok, engine::detokenizer_options opts)
      : detok_(tok, opts) {}
  std::string push(int32_t token) override { return detok_.push(token); }
  std::string finish() override { return detok_.finish(); }

 private:
  engine::detokenizer detok_;
};

// Keeps the host's callback and translates. The event structs point into locals that live
// for the duration of the callback only, as backend.h allows.
class abi_sink : public engine::request_sink {
 public:
  abi_sink(const engine::tokenizer& tok, moat_event_fn fn, void* user_data)
      : tok_(tok), fn_(fn), user_(user_data) {}

  void on_delta(uint32_t index, std::string_view text, std::span<const int32_t> tokens,
                std::span<const engine::logprob_entry> logprobs) override {
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

  void on_finish(uint32_t index, engine::finish_reason reason) override {
    moat_event e = blank(MOAT_EVENT_FINISH);
    e.index = index;
    e.finish_reason = reason == engine::finish_reason::length ? MOAT_FINISH_LENGTH : MOAT_FINISH_STOP;
    fn_(user_, &e);
  }

  void on_embedding(uint32_t index, std::span<const float> embedding) override {
    moat_event e = blank(MOAT_EVENT_EMBEDDING);
    e.index = index;
    e.embedding = embedding.data();
    e.embedding_dim = embedding.size();
    fn_(user_, &e);
  }

  void on_done(const engine::usage_counts& usage) override {
    moat_event e = blank(MOAT_EVENT_DONE);
    e.usage = {usage.prompt_tokens, usage.completion_tokens};
    fn_(user_, &e);
  }

  void on_error(engine::engine_status code, std::string_view message) override {
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
  moat_token_logprob token(const engine::token_logprob& t) const {
    // token_bytes returns storage owned by the tokenizer, valid for the backend's life.
    return {t.token, to_str(tok_.token_bytes(t.token)), t.logprob};
  }

  const engine::tokenizer& tok_;
  moat_event_fn fn_;
  void* user_;
};

std::vector<int32_t> prompt_tokens(moat_backend& b, const moat_prompt& p, std::string* echo) {
  if (p.text.size > 0 || p.token_count == 0) {
    std::string text = to_string(p.text);
    if (echo) *echo = text;
    return b.tokenizer->encode(text, /*add_special=*/true);
  }
  std::vector<int32_t> ids(p.tokens, p.tokens + p.token_count);  // as given: no BOS added
  if (echo) *echo = b.tokenizer->decode(ids, /*skip_special=*/false);
  return ids;
}

uint64_t pick_seed(moat_backend& b) {
  if (b.options.seed) return engine::mix_seed(*b.options.seed + b.seed_counter.fetch_add(1));
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace

moat_status to_moat_status(engine::engine_status s) {
  switch (s) {
    case engine::engine_status::ok: return MOAT_OK;
    case engine::engine_status::invalid_argument: return MOAT_ERR_INVALID_ARGUMENT;
    case engine::engine_status::context_length: return MOAT_ERR_CONTEXT_LENGTH;
    case engine::engine_status::busy: return MOAT_ERR_BUSY;
    case engine::engine_status::internal: return MOAT_ERR_INTERNAL;
    case engine::engine_status::unavailable: return MOAT_ERR_UNAVAILABLE;
    case engine::engine_status::cancelled: return MOAT_ERR_CANCELLED;
  }
  return MOAT_ERR_INTERNAL;
}

bool tokenizer_codec::is_end_of_generation(int32_t token) const {
  return tok_.is_end_of_generation(token);
}

std::unique_ptr<engine::stream_decoder> tokenizer_codec::make_decoder(bool continuation) const {
  engine::detokenizer_options opts;
  // A completion continues its prompt: the answer's leading space is real text there. A chat
  // answer starts fresh, so the SentencePiece leading space is dropped as decode() does.
  if (continuation) opts.strip_leading_space = false;
  return std::make_unique<detokenizer_decoder>(tok_, opts);
}

std::shared_ptr<engine::request_sink> make_abi_sink(const engine::tokenizer& tok, moat_event_fn fn,
                                                    void* user_data) {
  return std::make_shared<abi_sink>(tok, fn, user_data);
}

std::vector<int32_t> chat_prompt(moat_backend& b, const moat_message* messages, size_t count,
                                 bool add_generation_prompt) {
  std::vector<engine::chat_message> msgs;
  msgs.reserve(count);
  for (size_t i = 0; i < count; ++i)
    msgs.push_back({to_string(messages[i].role), to_string(messages[i].content),
                    to_string(messages[i].name)});
  engine::chat_render_options opt;
  opt.add_generation_prompt = add_generation_prompt;
  opt.bos_token = b.tokenizer->bos_text();
  opt.eos_token = b.tokenizer->eos_text();
  std::string text;
  try {
    text = b.chat->render(msgs, opt);
  } catch (const engine::chat_template_error& e) {
    throw std::invalid_argument(std::string("the chat template rejected the messages: ") + e.what());
  }
  auto ids = b.tokenizer->encode(text, /*add_special=*/false);
  const int32_t bos = b.tokenizer->bos_id();
  if (b.tokenizer->adds_bos() && bos >= 0 && (ids.empty() || ids.front() != bos))
    ids.insert(ids.begin(), bos);
  return ids;
}

engine::generate_request translate_request(moat_backend& b, const moat_request& req) {
  engine::generate_request out;
  out.id = req.request_id;
  switch (req.kind) {
    case MOAT_REQUEST_CHAT:
      if (req.message_count == 0) throw std::invalid_argument("messages must not be empty");
      out.prompts.push_back(chat_prompt(b, req.messages, req.message_count, req.add_generation_prompt != 0));
      break;
    case MOAT_REQUEST_COMPLETION:
    case MOAT_REQUEST_EMBEDDING: {
      if (req.prompt_count == 0) throw std::invalid_argument("the prompt must not be empty");
      const bool echo = req.kind == MOAT_REQUEST_COMPLETION && req.echo;
      for (size_t i = 0; i < req.prompt_count; ++i) {
        std::string echo_text;
        out.prompts.push_back(prompt_tokens(b, req.prompts[i], echo ? &echo_text : nullptr));
        if (echo) out.echo_text.push_back(std::move(echo_text));
        // As vLLM's incremental detokenizer does: after visible prompt text the answer's leading
        // space is kept; after a prompt of special tokens only (BOS) it is stripped.
        bool visible = echo;
        for (int32_t t : out.prompts.back()) visible = visible || !b.tokenizer->is_special(t);
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
  p.seed = s.has_seed ? s.seed : pick_seed(b);
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

}  // namespace moat::cpu

namespace moat::cpu {

namespace {

void set_error(moat_error* err, moat_status code, std::string_view message) {
  if (!err || err->struct_size < sizeof(moat_error)) return;
  err->code = code;
  const size_t n = std::min(message.size(), sizeof(err->message) - 1);
  std::memcpy(err->message, message.data(), n);
  err->message[n] = '\0';
}


int64_t get_int(simdjson::dom::element v, std::string_view key, int64_t lo, int64_t hi) {
  int64_t x = 0;
  double d = 0;
  if (v.get_int64().get(x) != simdjson::SUCCESS) {
    if (v.get_double().get(d) != simdjson::SUCCESS || d != static_cast<double>(static_cast<int64_t>(d)))
      throw std::invalid_argument(fmt::format("options.{}: expected an integer", key));
    x = static_cast<int64_t>(d);
  }
  if (x < lo || x > hi)
    throw std::invalid_argument(fmt::format("options.{}: {} is outside {}..{}", key, x, lo, hi));
  return x;
}

// The model options' key_file:/key_env: (encrypted checkpoints, docs/security.md), when one is
// given: the loaders then decrypt the weights files and refuse plaintext ones. Both at once is
// ambiguous and refused. Holds names only, never the key itself.
std::optional<crypto::key_source> key_option(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json.empty() ? std::string_view("{}") : json);
  simdjson::dom::object obj;
  if (parser.parse(padded).get_object().get(obj) != simdjson::SUCCESS) return std::nullopt;
  crypto::key_source src;
  std::string_view s;
  if (obj["key_file"].get_string().get(s) == simdjson::SUCCESS) src.key_file = std::string(s);
  if (obj["key_env"].get_string().get(s) == simdjson::SUCCESS) src.key_env = std::string(s);
  if (src.key_file.empty() && src.key_env.empty()) return std::nullopt;
  if (!src.key_file.empty() && !src.key_env.empty())
    throw std::invalid_argument("options: set key_file or key_env, not both");
  return src;
}

}  // namespace

backend_options parse_options(std::string_view json, std::vector<std::string>& ignored) {
  backend_options o;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json.empty() ? std::string_view("{}") : json);
  simdjson::dom::object obj;
  if (parser.parse(padded).get_object().get(obj) != simdjson::SUCCESS)
    throw std::invalid_argument("options: expected a map");
  bool has_path = false;
  for (auto [key, value] : obj) {
    if (key == "path") {
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS || s.empty())
        throw std::invalid_argument("options.path: expected the model's folder or file");
      o.path = std::string(s);
      has_path = true;
    } else if (key == "threads") {
      o.threads = static_cast<int32_t>(get_int(value, key, 0, 1024));
    } else if (key == "max_batch") {
      o.max_batch = static_cast<int32_t>(get_int(value, key, 1, 4096));
    } else if (key == "ctx") {
      o.ctx = static_cast<int32_t>(get_int(value, key, 0, 1 << 24));
    } else if (key == "kv_cache_mb") {
      o.kv_cache_mb = get_int(value, key, 1, 1 << 24);
    } else if (key == "max_queue") {
      o.max_queue = static_cast<int32_t>(get_int(value, key, 0, 1 << 24));
    } else if (key == "prefill_chunk") {
      o.prefill_chunk = static_cast<int32_t>(get_int(value, key, 1, 1 << 20));
    } else if (key == "reference") {
      bool b = false;
      if (value.get_bool().get(b) != simdjson::SUCCESS)
        throw std::invalid_argument("options.reference: expected true or false");
      o.reference = b;
    } else if (key == "seed") {
      o.seed = static_cast<uint64_t>(get_int(value, key, 0, INT64_MAX));
    } else if (key == "chat_template") {
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS)
        throw std::invalid_argument("options.chat_template: expected a built-in template name");
      o.chat_template = std::string(s);
    } else if (key == "key_file" || key == "key_env") {
      // Read again by key_option() (backend_options has no field for them); checked here so a
      // bad value fails with the others and the key is not reported as an unknown option.
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS || s.empty())
        throw std::invalid_argument(fmt::format("options.{}: expected a file path or a variable name", key));
    } else if (key == "kv_block_size") {
      o.kv_block_size = static_cast<int32_t>(get_int(value, key, 1, 1 << 16));
    } else if (key == "prefix_caching") {
      bool b = true;
      if (value.get_bool().get(b) != simdjson::SUCCESS)
        throw std::invalid_argument("options.prefix_caching: expected true or false");
      o.prefix_caching = b;
    } else if (key == "kv_dtype") {
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS || (s != "f32" && s != "int8"))
        throw std::invalid_argument("options.kv_dtype: expected f32 or int8");
      o.kv_dtype = std::string(s);
    } else if (key == "quant") {
      std::string_view s;
      if (value.get_string().get(s) != simdjson::SUCCESS ||
          (s != "none" && s != "f32" && s != "int8" && s != "int4" && s != "nf4"))
        throw std::invalid_argument("options.quant: expected int8, int4, nf4 or none");
      o.quant = (s == "none" || s == "f32") ? std::string() : std::string(s);
    } else {
      ignored.emplace_back(key);
    }
  }
  if (!has_path) throw std::invalid_argument("options.path: missing (the model's folder or file)");
  return o;
}

void logger::operator()(moat_log_level level, const std::string& message) const {
  if (!fn_) return;
  const std::string line = fmt::format("cpu[{}]: {}", model_, message);
  fn_(user_, level, {line.data(), line.size()});
}

namespace {

moat_status do_create(const moat_backend_config* config, moat_backend** out, moat_error* err) {
  if (!config || !out) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "create: missing config or output handle");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  const std::string name = to_string(config->model_name);
  logger log(config->log, config->log_user_data, name);
  std::vector<std::string> ignored;
  backend_options opts;
  try {
    opts = parse_options(std::string_view(config->options_json.data ? config->options_json.data : "",
                                          config->options_json.size),
                         ignored);
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, fmt::format("model {}: {}", name, e.what()));
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  for (const auto& k : ignored) log(MOAT_LOG_WARN, fmt::format("ignoring unknown option '{}'", k));
  engine::load_options load_opts;
  try {
    load_opts.key = key_option(std::string_view(config->options_json.data ? config->options_json.data : "",
                                                config->options_json.size));
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, fmt::format("model {}: {}", name, e.what()));
    return MOAT_ERR_INVALID_ARGUMENT;
  }

  std::filesystem::path path = opts.path;
  if (path.is_relative() && config->config_dir.size) {
    // backend.h: relative to the config file's folder. A path that only exists relative to the
    // working directory (DESIGN.md's examples are written from the repository root) is accepted too.
    std::error_code ec;
    auto beside_config = std::filesystem::path(to_string(config->config_dir)) / path;
    if (std::filesystem::exists(beside_config, ec) || !std::filesystem::exists(path, ec)) path = beside_config;
  }

  auto b = std::make_unique<moat_backend>(opts, log, name);
  try {
    if (load_opts.key && !load_opts.key->key_file.empty() &&
        std::filesystem::path(load_opts.key->key_file).is_relative() && config->config_dir.size) {
      // Resolved like options.path: beside the config file first.
      std::error_code ec;
      auto beside_config = std::filesystem::path(to_string(config->config_dir)) / load_opts.key->key_file;
      if (std::filesystem::exists(beside_config, ec) || !std::filesystem::exists(load_opts.key->key_file, ec))
        load_opts.key->key_file = beside_config.string();
    }
    b->model = std::make_shared<const engine::loaded_model>(engine::load_model(path, load_opts));
    const auto& tsrc = b->model->tokenizer;
    // An encrypted .gguf cannot be reopened by path: take its vocabulary (and template below)
    // from the copy the loader decrypted.
    const bool encrypted_gguf = load_opts.key && tsrc.gguf;
    b->tokenizer = encrypted_gguf ? engine::load_gguf_tokenizer(*tsrc.gguf)
                                  : engine::load_tokenizer(!tsrc.llama2c_bin.empty() ? tsrc.llama2c_bin : path);
    for (int32_t id : b->model->config.eos_token_ids)
      if (id >= 0 && id < b->tokenizer->vocab_size()) b->tokenizer->add_end_of_generation(id);
    try {
      if (encrypted_gguf) {
        auto source = tsrc.gguf->get_string_or("tokenizer.chat_template");
        b->chat = source ? engine::chat_template::from_source(std::move(*source), path.filename().string())
                         : engine::chat_template::builtin(opts.chat_template);
      } else {
        b->chat = engine::load_chat_template(path, opts.chat_template);
      }
    } catch (const engine::chat_template_error& e) {
      // A model whose own template does not parse still serves completions and a built-in chat.
      log(MOAT_LOG_WARN, fmt::format("chat template unusable ({}); using built-in '{}'", e.what(),
                                     opts.chat_template));
      b->chat = engine::chat_template::builtin(opts.chat_template);
    }
    if (b->tokenizer->vocab_size() > b->model->config.vocab_size)
      throw std::runtime_error(fmt::format("the tokenizer has {} tokens but the model only {}",
                                           b->tokenizer->vocab_size(), b->model->config.vocab_size));
    cpu_options ro;
    ro.threads = opts.threads;
    ro.kv_cache_mb = static_cast<size_t>(opts.kv_cache_mb);
    ro.max_ctx = opts.ctx;
    ro.max_slots = 0;  // the paged pool is bounded by kv_cache_mb alone
    ro.reference = opts.reference;
    ro.quant = opts.quant;
    ro.kv_block_size = opts.kv_block_size;
    ro.kv_dtype = opts.kv_dtype;
    b->runner = make_cpu_runner(b->model, ro);
    b->codec = std::make_unique<tokenizer_codec>(*b->tokenizer);
    b->scheduler = std::make_unique<engine::scheduler>(
        *b->runner, *b->codec,
        engine::scheduler_options{opts.max_batch, opts.max_queue, opts.prefill_chunk, opts.prefix_caching});
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_IO, fmt::format("model {}: {}", name, e.what()));
    return MOAT_ERR_IO;
  }
  log(MOAT_LOG_INFO,
      fmt::format("loaded {} ({}, {} layers, vocab {}, tokenizer {}, template {}): ctx {}, "
                  "{} KV blocks of {} positions ({} KV{}), {} path",
                  path.filename().string(), b->model->format, b->model->config.n_layers,
                  b->model->config.vocab_size, b->tokenizer->name(), b->chat->name(),
                  b->scheduler->max_ctx(), b->scheduler->block_count(), b->scheduler->block_size(),
                  opts.kv_dtype.empty() ? "f32" : opts.kv_dtype,
                  opts.prefix_caching ? ", prefix caching" : "",
                  opts.reference ? "reference" : "batched"));
  *out = b.release();
  return MOAT_OK;
}

moat_status cpu_create(const moat_backend_config* config, moat_backend** out, moat_error* err) noexcept {
  try {
    return do_create(config, out, err);
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INTERNAL, e.what());
  } catch (...) {
    set_error(err, MOAT_ERR_INTERNAL, "unknown failure while loading the model");
  }
  return MOAT_ERR_INTERNAL;
}

void cpu_destroy(moat_backend* b) noexcept {
  try {
    delete b;  // the scheduler's destructor sends every open request its terminal event
  } catch (...) {
  }
}

// Writes a field only when it lies inside the caller's struct_size (an older host has a
// shorter struct; fields are only ever appended).
#define MOAT_SET_FIELD(ptr, field, value)                                        \
  do {                                                                           \
    if ((ptr)->struct_size >= offsetof(std::remove_reference_t<decltype(*(ptr))>, field) + \
                                  sizeof((ptr)->field))                          \
      (ptr)->field = (value);                                                    \
  } while (0)

moat_status cpu_capabilities(moat_backend* b, moat_capabilities* caps) noexcept {
  if (!b || !caps) return MOAT_ERR_INVALID_ARGUMENT;
  static constexpr std::string_view owner = "moat";
  MOAT_SET_FIELD(caps, flags,
                 MOAT_CAP_CHAT | MOAT_CAP_COMPLETIONS | MOAT_CAP_EMBEDDINGS | MOAT_CAP_TOKENIZE |
                     MOAT_CAP_LOGPROBS | MOAT_CAP_TOKEN_PROMPTS);
  MOAT_SET_FIELD(caps, max_context, static_cast<uint32_t>(b->scheduler->max_ctx()));
  MOAT_SET_FIELD(caps, embedding_dim, static_cast<uint32_t>(b->model->config.hidden_size));
  MOAT_SET_FIELD(caps, max_top_logprobs, 20u);
  MOAT_SET_FIELD(caps, owned_by, (moat_str{owner.data(), owner.size()}));
  return MOAT_OK;
}

moat_status cpu_submit(moat_backend* b, const moat_request* request, moat_event_fn on_event,
                       void* user_data, moat_error* err) noexcept {
  if (!b || !request || !on_event) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "submit: missing request or event sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  try {
    engine::generate_request req = translate_request(*b, *request);
    req.sink = make_abi_sink(*b->tokenizer, on_event, user_data);
    auto result = b->scheduler->submit(std::move(req));
    if (result.code == engine::engine_status::ok) return MOAT_OK;
    const moat_status code = to_moat_status(result.code);
    set_error(err, code, result.message);
    return code;
  } catch (const std::invalid_argument& e) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, e.what());
    return MOAT_ERR_INVALID_ARGUMENT;
  } catch (const std::exception& e) {
    b->log(MOAT_LOG_ERROR, fmt::format("submit failed: {}", e.what()));
    set_error(err, MOAT_ERR_INTERNAL, "the backend could not accept the request");
    return MOAT_ERR_INTERNAL;
  }
}

void cpu_cancel(moat_backend* b, uint64_t request_id) noexcept {
  if (!b) return;
  try {
    b->scheduler->cancel(request_id);
  } catch (...) {
  }
}

moat_status cpu_tokenize(moat_backend* b, const moat_tokenize_request* request, moat_tokens_fn on_tokens,
                         void* user_data, moat_error* err) noexcept {
  if (!b || !request || !on_tokens) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "tokenize: missing request or sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  try {
    std::vector<int32_t> ids =
        request->message_count > 0
            ? chat_prompt(*b, request->messages, request->message_count, request->add_generation_prompt != 0)
            : b->tokenizer->encode(to_string(request->text), request->add_special_tokens != 0);
    on_tokens(user_data, ids.data(), ids.size());
    return MOAT_OK;
  } catch (const std::invalid_argument& e) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, e.what());
    return MOAT_ERR_INVALID_ARGUMENT;
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INTERNAL, "tokenization failed");
    return MOAT_ERR_INTERNAL;
  }
}

moat_status cpu_detokenize(moat_backend* b, const int32_t* tokens, size_t count, moat_text_fn on_text,
                           void* user_data, moat_error* err) noexcept {
  if (!b || (!tokens && count) || !on_text) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "detokenize: missing tokens or sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  try {
    for (size_t i = 0; i < count; ++i)
      if (tokens[i] < 0 || tokens[i] >= b->tokenizer->vocab_size()) {
        set_error(err, MOAT_ERR_INVALID_ARGUMENT,
                  fmt::format("token id {} is outside the vocabulary (0..{})", tokens[i],
                              b->tokenizer->vocab_size() - 1));
        return MOAT_ERR_INVALID_ARGUMENT;
      }
    std::string text = b->tokenizer->decode(std::span<const int32_t>(tokens, count), /*skip_special=*/false);
    on_text(user_data, {text.data(), text.size()});
    return MOAT_OK;
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INTERNAL, "detokenization failed");
    return MOAT_ERR_INTERNAL;
  }
}

moat_status cpu_stats(moat_backend* b, moat_stats* stats) noexcept {
  if (!b || !stats) return MOAT_ERR_INVALID_ARGUMENT;
  const auto s = b->scheduler->stats();
  MOAT_SET_FIELD(stats, requests_running, s.running);
  MOAT_SET_FIELD(stats, requests_waiting, s.waiting);
  MOAT_SET_FIELD(stats, kv_cache_usage, s.kv_usage);
  return MOAT_OK;
}

#undef MOAT_SET_FIELD

}  // namespace
}  // namespace moat::cpu

extern "C" MOAT_EXPORT const moat_backend_api* moat_backend_entry(void) {
  static const moat_backend_api api = {
      sizeof(moat_backend_api),
      MOAT_BACKEND_ABI_VERSION,
      {"cpu", 3},
      moat::cpu::cpu_create,
      moat::cpu::cpu_destroy,
      moat::cpu::cpu_capabilities,
      moat::cpu::cpu_submit,
      moat::cpu::cpu_cancel,
      moat::cpu::cpu_tokenize,
      moat::cpu::cpu_detokenize,
      moat::cpu::cpu_stats,
      moat::cpu::cpu_metrics,
  };
  return &api;
}
