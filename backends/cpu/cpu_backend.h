// The cpu plugin's instance: what create() builds from the options and what the ABI functions in
// cpu_backend.cpp drive. Internal to libmoat_cpu.so (nothing here crosses the C ABI).
//
//   options (the model's `options:` map, as JSON):
//     path          model folder, .gguf or llama2.c .bin (relative to the config file)   required
//     threads       worker threads for the batched forward; 0 = all cores                 0
//     max_batch     sequences decoded together                                            16
//     ctx           context length per sequence; 0 = the model's max_position_embeddings   0
//     kv_cache_mb   the paged KV pool; blocks = kv_cache_mb / (kv bytes per token *        256
//                   kv_block_size); must hold at least one sequence of ctx positions
//     kv_block_size positions per KV block (1..65536)                                      16
//     prefix_caching share cached full KV blocks between prompts with the same prefix and  true
//                   cache_salt (the request body's `cache_salt` string, absent = "")
//     kv_dtype      f32 | int8: K/V stored as f32, or int8 with one scale per (token, head)  f32
//     max_queue     requests waiting for admission before submit says busy (429)           64
//     prefill_chunk prompt tokens per engine step                                          256
//     reference     the plain scalar forward pass (slow; for checks)                       false
//     seed          base for the seeds of requests that bring none; unset = random         unset
//     chat_template built-in template when the model ships none                            "plain"
//     quant         int8 | int4 | nf4: quantize the linear weights on load; none = as stored  none
#pragma once

#include <atomic>
#include <cstdint>
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

namespace moat::cpu {

struct backend_options {
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
};

// Parses the options JSON; throws std::invalid_argument naming the key. Unknown keys are
// collected in `ignored` (logged by the caller) so a config written for a newer plugin loads.
backend_options parse_options(std::string_view json, std::vector<std::string>& ignored);

// Adapts the engine tokenizer + streaming detokenizer to the scheduler's text_codec.
class tokenizer_codec : public engine::text_codec {
 public:
  explicit tokenizer_codec(const engine::tokenizer& tok) : tok_(tok) {}
  bool is_end_of_generation(int32_t token) const override;
  std::unique_ptr<engine::stream_decoder> make_decoder(bool continuation) const override;

 private:
  const engine::tokenizer& tok_;
};

class logger {
 public:
  logger(moat_log_fn fn, void* user_data, std::string model) : fn_(fn), user_(user_data), model_(std::move(model)) {}
  void operator()(moat_log_level level, const std::string& message) const;

 private:
  moat_log_fn fn_;
  void* user_;
  std::string model_;
};

}  // namespace moat::cpu

// The opaque handle of backend.h. Members are destroyed in reverse order: the scheduler (which
// ends every request) goes first, then the runner, tokenizer and model it uses.
struct moat_backend {
  moat_backend(moat::cpu::backend_options o, moat::cpu::logger l, std::string name)
      : options(std::move(o)), log(std::move(l)), model_name(std::move(name)) {}

  moat::cpu::backend_options options;
  moat::cpu::logger log;
  std::string model_name;
  std::shared_ptr<const moat::engine::loaded_model> model;
  std::unique_ptr<moat::engine::tokenizer> tokenizer;
  std::optional<moat::engine::chat_template> chat;
  std::unique_ptr<moat::engine::model_runner> runner;
  std::unique_ptr<moat::cpu::tokenizer_codec> codec;
  std::unique_ptr<moat::engine::scheduler> scheduler;
  std::atomic<uint64_t> seed_counter{0};
};

namespace moat::cpu {

// Builds the scheduler's request from the ABI request (prompt rendering and tokenization).
// Throws std::invalid_argument (message safe for clients) for what the client got wrong.
engine::generate_request translate_request(moat_backend& b, const moat_request& req);

// Chat messages → prompt ids: the model's template, then BOS if the template wrote none and the
// tokenizer adds one.
std::vector<int32_t> chat_prompt(moat_backend& b, const moat_message* messages, size_t count,
                                 bool add_generation_prompt);

// The sink that turns scheduler events into moat_event callbacks.
std::shared_ptr<engine::request_sink> make_abi_sink(const engine::tokenizer& tok, moat_event_fn fn,
                                                    void* user_data);

moat_status to_moat_status(engine::engine_status s);

// cpu_backend_kv.cpp: the request body's `cache_salt` (a string; absent or null = ""; any other
// type throws std::invalid_argument, a message safe for clients).
std::string cache_salt(const moat_request& req);
// The metrics() slot: prefix-cache counters, preemptions and the KV pool's blocks. noexcept.
moat_status cpu_metrics(moat_backend* b, moat_text_fn on_text, void* user_data) noexcept;

}  // namespace moat::cpu
