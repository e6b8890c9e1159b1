// serving_backend: create() (options, model, tokenizer, chat template, the plugin's runner, the
// scheduler) and the ABI calls that need no request translation. Every public function is
// noexcept: no C++ exception crosses into the host.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>
#include <simdjson.h>

#include "engine/model_error.h"
#include "engine/serving.h"
#include "engine/tokenizer_loaders.h"

namespace moat::engine {

namespace {

std::string to_string(moat_str s) { return s.size ? std::string(s.data, s.size) : std::string(); }


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


// A relative path from the options: beside the config file (backend.h). A path that only exists
// relative to the working directory (DESIGN.md's examples are written from the repository root)
// is accepted too.
std::filesystem::path resolve(const std::filesystem::path& p, const moat_backend_config& config) {
  if (!p.is_relative() || !config.config_dir.size) return p;
  std::error_code ec;
  auto beside_config = std::filesystem::path(to_string(config.config_dir)) / p;
  if (std::filesystem::exists(beside_config, ec) || !std::filesystem::exists(p, ec)) return beside_config;
  return p;
}

}  // namespace

void set_error(moat_error* err, moat_status code, std::string_view message) noexcept {
  if (!err || err->struct_size < sizeof(moat_error)) return;
  err->code = code;
  const size_t n = std::min(message.size(), sizeof(err->message) - 1);
  std::memcpy(err->message, message.data(), n);
  err->message[n] = '\0';
}

serving_backend::~serving_backend() = default;

moat_status serving_backend::create(const moat_backend_config* config, const serving_plugin& plugin,
                                    std::unique_ptr<serving_backend>& out, moat_error* err) noexcept {
  try {
    if (!config) {
      set_error(err, MOAT_ERR_INVALID_ARGUMENT, "create: missing config or output handle");
      return MOAT_ERR_INVALID_ARGUMENT;
    }
    const std::string name = to_string(config->model_name);
    serving_logger log(config->log, config->log_user_data, fmt::format("{}[{}]", plugin.name, name));
    const std::string_view json(config->options_json.data ? config->options_json.data : "",
                                config->options_json.size);
    std::vector<std::string> ignored;
    serving_options opts;
    load_options load_opts;
    try {
      opts = parse_serving_options(json, plugin.own_keys, ignored);
    } catch (const std::exception& e) {
      set_error(err, MOAT_ERR_INVALID_ARGUMENT, fmt::format("model {}: {}", name, e.what()));
      return MOAT_ERR_INVALID_ARGUMENT;
    }
    for (const auto& k : ignored) log(MOAT_LOG_WARN, fmt::format("ignoring unknown option '{}'", k));
    try {
      load_opts.key = key_option(json);
    } catch (const std::exception& e) {
      set_error(err, MOAT_ERR_INVALID_ARGUMENT, fmt::format("model {}: {}", name, e.what()));
      return MOAT_ERR_INVALID_ARGUMENT;
    }
    const std::filesystem::path path = resolve(opts.path, *config);

    std::unique_ptr<serving_backend> b(new serving_backend(opts, log, name));
    try {
      // Resolved like options.path: beside the config file first.
      if (load_opts.key && !load_opts.key->key_file.empty())
        load_opts.key->key_file = resolve(load_opts.key->key_file, *config).string();
      // The scalar reference path keeps quantizing in the runner, as it always has.
      if (plugin.quantize_on_load && !opts.quant.empty() && !opts.reference) {
        load_opts.quant = opts.quant == "int8"   ? dtype::int8
                          : opts.quant == "int4" ? dtype::int4
                                                 : dtype::nf4;
        load_opts.threads =
            static_cast<unsigned>(std::max(opts.threads, 0));  // 0: one per hardware thread
      }
      b->model_ = std::make_shared<const loaded_model>(load_model(path, load_opts));
      const auto& tsrc = b->model_->tokenizer;
      // An encrypted .gguf cannot be reopened by path: take its vocabulary (and template below)
      // from the copy the loader decrypted.
      const bool encrypted_gguf = load_opts.key && tsrc.gguf;
      b->tokenizer_ = encrypted_gguf ? load_gguf_tokenizer(*tsrc.gguf)
                                    : load_tokenizer(!tsrc.llama2c_bin.empty() ? tsrc.llama2c_bin : path);
      for (int32_t id : b->model_->config.eos_token_ids)
        if (id >= 0 && id < b->tokenizer_->vocab_size()) b->tokenizer_->add_end_of_generation(id);
      try {
        if (encrypted_gguf) {
          auto source = tsrc.gguf->get_string_or("tokenizer.chat_template");
          b->chat_ = source ? chat_template::from_source(std::move(*source), path.filename().string())
                           : chat_template::builtin(opts.chat_template);
        } else {
          b->chat_ = load_chat_template(path, opts.chat_template);
        }
      } catch (const chat_template_error& e) {
        // A model whose own template does not parse still serves completions and a built-in chat.
        log(MOAT_LOG_WARN, fmt::format("chat template unusable ({}); using built-in '{}'", e.what(),
                                       opts.chat_template));
        b->chat_ = chat_template::builtin(opts.chat_template);
      }
      if (b->tokenizer_->vocab_size() > b->model_->config.vocab_size)
        throw std::runtime_error(fmt::format("the tokenizer has {} tokens but the model only {}",
                                             b->tokenizer_->vocab_size(), b->model_->config.vocab_size));
      if (!plugin.make_runner) throw std::runtime_error("the plugin has no runner");
      b->runner_ = plugin.make_runner(b->model_, opts);
      b->codec_ = std::make_unique<tokenizer_codec>(*b->tokenizer_);
      b->scheduler_ = std::make_unique<scheduler>(
          *b->runner_, *b->codec_,
          scheduler_options{.max_batch = opts.max_batch, .max_queue = opts.max_queue,
                            .prefill_chunk = opts.prefill_chunk, .prefix_caching = opts.prefix_caching,
                            .swap = true});
    } catch (const std::exception& e) {
      set_error(err, MOAT_ERR_IO, fmt::format("model {}: {}", name, e.what()));
      return MOAT_ERR_IO;
    }
    const std::string tail = plugin.describe ? plugin.describe(opts) : std::string();
    log(MOAT_LOG_INFO,
        fmt::format("loaded {} ({}, {} layers, vocab {}, tokenizer {}, template {}): ctx {}, "
                    "{} KV blocks of {} positions ({} KV{}{}){}{}",
                    path.filename().string(), b->model_->format, b->model_->config.n_layers,
                    b->model_->config.vocab_size, b->tokenizer_->name(), b->chat_->name(),
                    b->scheduler_->max_ctx(), b->scheduler_->block_count(), b->scheduler_->block_size(),
                    opts.kv_dtype.empty() ? "f32" : opts.kv_dtype, opts.prefix_caching ? ", prefix caching" : "",
                    b->runner_->can_swap()
                        ? fmt::format(", {} host blocks for swapping", b->runner_->host_blocks())
                        : std::string(),
                    tail.empty() ? "" : ", ", tail));
    if (opts.host_kv_mb > 0 && !b->runner_->can_swap())
      log(MOAT_LOG_WARN, fmt::format("host_kv_mb {} is set but this runner keeps no host KV store (or it holds "
                                     "no block): preemption recomputes",
                                     opts.host_kv_mb));
    out = std::move(b);
    return MOAT_OK;
  } catch (const std::exception& e) {
    set_error(err, MOAT_ERR_INTERNAL, e.what());
  } catch (...) {
    set_error(err, MOAT_ERR_INTERNAL, "unknown failure while loading the model");
  }
  return MOAT_ERR_INTERNAL;
}

// Writes a field only when it lies inside the caller's struct_size (an older host has a
// shorter struct; fields are only ever appended).
#define MOAT_SET_FIELD(ptr, field, value)                                                  \
  do {                                                                                     \
    if ((ptr)->struct_size >= offsetof(std::remove_reference_t<decltype(*(ptr))>, field) + \
                                  sizeof((ptr)->field))                                    \
      (ptr)->field = (value);                                                              \
  } while (0)

moat_status serving_backend::capabilities(moat_capabilities* caps) const noexcept {
  if (!caps) return MOAT_ERR_INVALID_ARGUMENT;
  static constexpr std::string_view owner = "moat";
  MOAT_SET_FIELD(caps, flags,
                 MOAT_CAP_CHAT | MOAT_CAP_COMPLETIONS | MOAT_CAP_EMBEDDINGS | MOAT_CAP_TOKENIZE |
                     MOAT_CAP_LOGPROBS | MOAT_CAP_TOKEN_PROMPTS);
  MOAT_SET_FIELD(caps, max_context, static_cast<uint32_t>(scheduler_->max_ctx()));
  MOAT_SET_FIELD(caps, embedding_dim, static_cast<uint32_t>(model_->config.hidden_size));
  MOAT_SET_FIELD(caps, max_top_logprobs, 20u);
  MOAT_SET_FIELD(caps, owned_by, (moat_str{owner.data(), owner.size()}));
  return MOAT_OK;
}

moat_status serving_backend::submit(const moat_request* request, moat_event_fn on_event, void* user_data,
                                    moat_error* err) noexcept {
  if (!request || !on_event) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "submit: missing request or event sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  try {
    generate_request req = translate_request(*request);
    req.sink = make_abi_sink(*tokenizer_, on_event, user_data);
    auto result = scheduler_->submit(std::move(req));
    if (result.code == engine_status::ok) return MOAT_OK;
    const moat_status code = to_moat_status(result.code);
    set_error(err, code, result.message);
    return code;
  } catch (const std::invalid_argument& e) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, e.what());
    return MOAT_ERR_INVALID_ARGUMENT;
  } catch (const std::exception& e) {
    try {
      log_(MOAT_LOG_ERROR, fmt::format("submit failed: {}", e.what()));
    } catch (...) {
    }
    set_error(err, MOAT_ERR_INTERNAL, "the backend could not accept the request");
    return MOAT_ERR_INTERNAL;
  }
}

void serving_backend::cancel(uint64_t request_id) noexcept {
  try {
    scheduler_->cancel(request_id);
  } catch (...) {
  }
}

moat_status serving_backend::tokenize(const moat_tokenize_request* request, moat_tokens_fn on_tokens,
                                      void* user_data, moat_error* err) noexcept {
  if (!request || !on_tokens) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "tokenize: missing request or sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  try {
    std::vector<int32_t> ids =
        request->message_count > 0
            ? chat_prompt(request->messages, request->message_count, request->add_generation_prompt != 0)
            : tokenizer_->encode(to_string(request->text), request->add_special_tokens != 0);
    on_tokens(user_data, ids.data(), ids.size());
    return MOAT_OK;
  } catch (const std::invalid_argument& e) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, e.what());
    return MOAT_ERR_INVALID_ARGUMENT;
  } catch (const std::exception&) {
    set_error(err, MOAT_ERR_INTERNAL, "tokenization failed");
    return MOAT_ERR_INTERNAL;
  }
}

moat_status serving_backend::detokenize(const int32_t* tokens, size_t count, moat_text_fn on_text,
                                        void* user_data, moat_error* err) noexcept {
  if ((!tokens && count) || !on_text) {
    set_error(err, MOAT_ERR_INVALID_ARGUMENT, "detokenize: missing tokens or sink");
    return MOAT_ERR_INVALID_ARGUMENT;
  }
  try {
    for (size_t i = 0; i < count; ++i)
      if (tokens[i] < 0 || tokens[i] >= tokenizer_->vocab_size()) {
        set_error(err, MOAT_ERR_INVALID_ARGUMENT,
                  fmt::format("token id {} is outside the vocabulary (0..{})", tokens[i],
                              tokenizer_->vocab_size() - 1));
        return MOAT_ERR_INVALID_ARGUMENT;
      }
    std::string text = tokenizer_->decode(std::span<const int32_t>(tokens, count), /*skip_special=*/false);
    on_text(user_data, {text.data(), text.size()});
    return MOAT_OK;
  } catch (const std::exception&) {
    set_error(err, MOAT_ERR_INTERNAL, "detokenization failed");
    return MOAT_ERR_INTERNAL;
  }
}

moat_status serving_backend::stats(moat_stats* out) const noexcept {
  if (!out) return MOAT_ERR_INVALID_ARGUMENT;
  const auto s = scheduler_->stats();
  MOAT_SET_FIELD(out, requests_running, s.running);
  MOAT_SET_FIELD(out, requests_waiting, s.waiting);
  MOAT_SET_FIELD(out, kv_cache_usage, s.kv_usage);
  return MOAT_OK;
}

#undef MOAT_SET_FIELD

// The paged KV cache's counters for GET /metrics (vLLM's names with `moat:`; the host adds
// model_name). Atomics read without a lock: never blocks the engine.
std::string serving_backend::metrics_text() const {
  const auto s = scheduler_->stats();
  return fmt::format(
      "# HELP moat:prefix_cache_queries_total Prompt tokens looked up in the KV prefix cache.\n"
      "# TYPE moat:prefix_cache_queries_total counter\n"
      "moat:prefix_cache_queries_total {}\n"
      "# HELP moat:prefix_cache_hits_total Prompt tokens found in the KV prefix cache (not computed).\n"
      "# TYPE moat:prefix_cache_hits_total counter\n"
      "moat:prefix_cache_hits_total {}\n"
      "# HELP moat:num_preemptions_total Sequences preempted because the KV pool was full (swapped or recomputed).\n"
      "# TYPE moat:num_preemptions_total counter\n"
      "moat:num_preemptions_total {}\n"
      "# HELP moat:num_preemptions_recompute_total Preempted sequences requeued to recompute their context.\n"
      "# TYPE moat:num_preemptions_recompute_total counter\n"
      "moat:num_preemptions_recompute_total {}\n"
      "# HELP moat:kv_swap_out_total Preempted sequences whose KV blocks were swapped out to host memory.\n"
      "# TYPE moat:kv_swap_out_total counter\n"
      "moat:kv_swap_out_total {}\n"
      "# HELP moat:kv_swap_in_total Swapped-out sequences whose KV blocks were swapped back in.\n"
      "# TYPE moat:kv_swap_in_total counter\n"
      "moat:kv_swap_in_total {}\n"
      "# HELP moat:kv_swap_out_blocks_total KV blocks copied to host memory.\n"
      "# TYPE moat:kv_swap_out_blocks_total counter\n"
      "moat:kv_swap_out_blocks_total {}\n"
      "# HELP moat:kv_swap_in_blocks_total KV blocks copied back from host memory.\n"
      "# TYPE moat:kv_swap_in_blocks_total counter\n"
      "moat:kv_swap_in_blocks_total {}\n"
      "# HELP moat:num_requests_swapped Sequences whose KV blocks are in host memory now.\n"
      "# TYPE moat:num_requests_swapped gauge\n"
      "moat:num_requests_swapped {}\n"
      "# HELP moat_kv_host_blocks_used KV blocks of host memory holding swapped-out sequences.\n"
      "# TYPE moat_kv_host_blocks_used gauge\n"
      "moat_kv_host_blocks_used {}\n"
      "# HELP moat_kv_host_blocks_total KV blocks of host memory for swapping (options.host_kv_mb).\n"
      "# TYPE moat_kv_host_blocks_total gauge\n"
      "moat_kv_host_blocks_total {}\n"
      "# HELP moat_kv_blocks_used KV blocks referenced by running sequences.\n"
      "# TYPE moat_kv_blocks_used gauge\n"
      "moat_kv_blocks_used {}\n"
      "# HELP moat_kv_blocks_total KV blocks in the pool.\n"
      "# TYPE moat_kv_blocks_total gauge\n"
      "moat_kv_blocks_total {}\n",
      s.prefix_cache_queries, s.prefix_cache_hits, s.preemptions, s.preemptions_recompute, s.swap_outs, s.swap_ins,
      s.blocks_swapped_out, s.blocks_swapped_in, s.swapped, s.host_blocks_used, s.host_blocks_total, s.kv_blocks_used,
      s.kv_blocks_total);
}

}  // namespace moat::engine
