// serving_backend: the device-independent half of a model plugin (libmoat_cpu.so, libmoat_cuda.so).
// It loads the model, tokenizer and chat template, builds the plugin's model_runner through a
// factory, runs the scheduler, and answers every ABI call of plugins/include/moat/backend.h
// except capabilities' owner and the metrics a device adds. A plugin's ABI functions are thin
// forwards; the plugin keeps only its device checks and its runner.
//
//   engine::serving_plugin p;
//   p.name = "cuda";                                        // log prefix "cuda[<model>]: "
//   p.own_keys = {"device", "devices", "tensor_parallel"};  // not reported as unknown
//   p.make_runner = [](std::shared_ptr<const engine::loaded_model> m, const engine::serving_options& o) {
//     return make_cuda_runner(std::move(m), {...from o...});
//   };
//   std::unique_ptr<engine::serving_backend> s;
//   moat_status st = engine::serving_backend::create(config, p, s, err);   // noexcept
//   s->submit(request, on_event, user_data, err);                          // and the rest
//
// Options (the model's `options:` map, as JSON), shared by every plugin:
//   path          model folder, .gguf or llama2.c .bin (relative to the config file)   required
//   threads       worker threads for the batched forward; 0 = all cores (cpu only)     0
//   max_batch     sequences decoded together                                            16
//   ctx           context length per sequence; 0 = the model's max_position_embeddings   0
//   kv_cache_mb   the paged KV pool; blocks = kv_cache_mb / (kv bytes per token *        256
//                 kv_block_size); must hold at least one sequence of ctx positions
//   kv_block_size positions per KV block (1..65536)                                      16
//   prefix_caching share cached full KV blocks between prompts with the same prefix and  true
//                 cache_salt (the request body's `cache_salt` string, absent = "")
//   kv_dtype      f32 | int8: K/V stored as f32, or int8 with one scale per (token, head)  f32
//   host_kv_mb    host memory for KV blocks swapped out when the pool runs out: a preempted   0
//                 sequence moves there and back instead of recomputing (0 = recompute only)
//   max_queue     requests waiting for admission before submit says busy (429)           64
//   prefill_chunk prompt tokens per engine step                                          256
//   reference     the plain scalar forward pass (slow; for checks; cpu only)             false
//   seed          base for the seeds of requests that bring none; unset = random         unset
//   chat_template built-in template when the model ships none                            "plain"
//   quant         int8 | int4 | nf4: quantize the linear weights on load; none = as stored  none
//   key_file / key_env  the key of an encrypted checkpoint (docs/security.md)
// Device-specific keys: the plugin lists them in serving_plugin::own_keys, so they are neither
// rejected nor warned about here, and parses them itself from the same JSON (the cuda plugin:
// cuda_options.h). Any other key is logged as "ignoring unknown option" and skipped, so a config
// written for a newer plugin loads. A runner factory that cannot honour a shared option (the
// cuda runner and kv_dtype int8) throws, and create() fails naming it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/chat_template.h"
#include "engine/loader.h"
#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"
#include "moat/backend.h"

namespace moat::engine {

struct serving_options {
  std::string path;
  int32_t threads = 0;
  int32_t max_batch = 16;
  int32_t ctx = 0;
  int64_t kv_cache_mb = 256;
  int32_t max_queue = 64;
  int32_t prefill_chunk = 256;
  bool reference = false;
  std::optional<uint64_t> seed;
  std::string chat_template = "plain";
  std::string quant;  // "" = as stored, else int8 / int4 / nf4
  int32_t kv_block_size = 16;
  bool prefix_caching = true;
  std::string kv_dtype;  // "" (f32) or "int8"
  int64_t host_kv_mb = 0;  // the runner's host KV store for swap preemption; 0 = none
};

// Parses the options JSON; throws std::invalid_argument naming the key. Keys neither shared nor
// in `own_keys` are collected in `ignored` (logged by the caller).
serving_options parse_serving_options(std::string_view json, const std::vector<std::string>& own_keys,
                                      std::vector<std::string>& ignored);

// What a plugin brings: its name (log prefix), its own option keys and its runner.
struct serving_plugin {
  using runner_factory =
      std::function<std::unique_ptr<model_runner>(std::shared_ptr<const loaded_model>, const serving_options&)>;
  std::string name;
  std::vector<std::string> own_keys;
  runner_factory make_runner;
  // The end of the "loaded ..." log line, e.g. "batched path"; empty = nothing.
  std::function<std::string(const serving_options&)> describe;
  // Whether options.quant is applied by the loader (load_options::quant: the linear weights are
  // quantized while loading and their source pages released) rather than by the runner. The cpu
  // plugin sets it; the cuda plugin quantizes on upload, in its own formats.
  bool quantize_on_load = false;
};

// Sends log lines to the host's sink as "<plugin>[<model>]: <message>".
class serving_logger {
 public:
  serving_logger(moat_log_fn fn, void* user_data, std::string prefix)
      : fn_(fn), user_(user_data), prefix_(std::move(prefix)) {}
  void operator()(moat_log_level level, const std::string& message) const;

 private:
  moat_log_fn fn_;
  void* user_;
  std::string prefix_;  // "cpu[model]"
};

// Adapts the engine tokenizer + streaming detokenizer to the scheduler's text_codec.
class tokenizer_codec : public text_codec {
 public:
  explicit tokenizer_codec(const tokenizer& tok) : tok_(tok) {}
  bool is_end_of_generation(int32_t token) const override;
  std::unique_ptr<stream_decoder> make_decoder(bool continuation) const override;

 private:
  const tokenizer& tok_;
};

// One loaded model being served. Members are destroyed in reverse order: the scheduler (which
// ends every request) goes first, then the runner, tokenizer and model it uses. Every public
// function is noexcept and reports failures as a moat_status plus a message in `err`.
class serving_backend {
 public:
  // Loads and starts serving; on failure `out` stays empty and `err` says why ("model <name>:
  // ..."): MOAT_ERR_INVALID_ARGUMENT for options, MOAT_ERR_IO for loading or the runner.
  static moat_status create(const moat_backend_config* config, const serving_plugin& plugin,
                            std::unique_ptr<serving_backend>& out, moat_error* err) noexcept;
  ~serving_backend();

  moat_status capabilities(moat_capabilities* caps) const noexcept;
  moat_status submit(const moat_request* request, moat_event_fn on_event, void* user_data,
                     moat_error* err) noexcept;
  void cancel(uint64_t request_id) noexcept;
  moat_status tokenize(const moat_tokenize_request* request, moat_tokens_fn on_tokens, void* user_data,
                       moat_error* err) noexcept;
  moat_status detokenize(const int32_t* tokens, size_t count, moat_text_fn on_text, void* user_data,
                         moat_error* err) noexcept;
  moat_status stats(moat_stats* stats) const noexcept;
  // Prefix-cache counters, preemptions, swaps and the KV pools' blocks (Prometheus text). Throws only
  // std::bad_alloc.
  std::string metrics_text() const;

  const serving_options& options() const { return options_; }
  const serving_logger& log() const { return log_; }
  const scheduler& engine_scheduler() const { return *scheduler_; }

  // Request translation (serving_requests.cpp). Throws std::invalid_argument, a message safe
  // for clients, for what the client got wrong.
  generate_request translate_request(const moat_request& req);
  // Chat messages → prompt ids: the model's template, then BOS if the template wrote none and
  // the tokenizer adds one.
  std::vector<int32_t> chat_prompt(const moat_message* messages, size_t count, bool add_generation_prompt);

 private:
  serving_backend(serving_options o, serving_logger l, std::string name)
      : options_(std::move(o)), log_(std::move(l)), model_name_(std::move(name)) {}
  std::vector<int32_t> prompt_tokens(const moat_prompt& p, std::string* echo);
  uint64_t pick_seed();

  serving_options options_;
  serving_logger log_;
  std::string model_name_;
  std::shared_ptr<const loaded_model> model_;
  std::unique_ptr<tokenizer> tokenizer_;
  std::optional<chat_template> chat_;
  std::unique_ptr<model_runner> runner_;
  std::unique_ptr<tokenizer_codec> codec_;
  std::unique_ptr<scheduler> scheduler_;
  std::atomic<uint64_t> seed_counter_{0};
};

// The request body's `cache_salt` (a string; absent or null = ""; any other type throws
// std::invalid_argument, a message safe for clients).
std::string cache_salt(const moat_request& req);

// The sink that turns scheduler events into moat_event callbacks.
std::shared_ptr<request_sink> make_abi_sink(const tokenizer& tok, moat_event_fn fn, void* user_data);

moat_status to_moat_status(engine_status s);

// Copies `message` into err->message (truncated, NUL-terminated) when err is large enough.
void set_error(moat_error* err, moat_status code, std::string_view message) noexcept;

}  // namespace moat::engine
