// moat/engine/request.h — what the scheduler is asked to do and how it answers.
//
//   auto sink = std::make_shared<my_sink>();          // implements request_sink
//   moat::engine::generate_request r;
//   r.id = 7;
//   r.prompts = {{1, 403, 407}};                       // token ids, one list per prompt
//   r.sampling.max_tokens = 16;
//   r.sink = sink;
//   scheduler.submit(std::move(r));                    // events arrive on the engine thread
//
// Independent of the plugin ABI (backend.h) so the scheduler can be tested with fakes and shared
// by every device backend; the plugin glue translates these calls into moat_event callbacks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampling.h"

namespace moat::engine {

// Mirrors the moat_status codes the scheduler can produce (backend.h maps them 1:1).
enum class engine_status {
  ok,
  invalid_argument,
  context_length,
  busy,
  internal,
  unavailable,
  cancelled,
};

enum class finish_reason { none, stop, length };

struct logprob_entry {
  token_logprob chosen;
  std::vector<token_logprob> top;  // most likely first
};

struct usage_counts {
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
};

// Receives a request's events, all on the engine thread, never two at once for one request.
// Exactly one of on_done / on_error ends every accepted request; nothing follows it.
class request_sink {
 public:
  virtual ~request_sink() = default;
  // text: complete UTF-8 (possibly empty when only tokens advance); tokens: the ids this delta
  // covers; logprobs: one per token when the request asked for logprobs, else empty.
  virtual void on_delta(uint32_t index, std::string_view text, std::span<const int32_t> tokens,
                        std::span<const logprob_entry> logprobs) = 0;
  virtual void on_finish(uint32_t index, finish_reason reason) = 0;
  // embedding: a unit vector [hidden_size]; only for embedding requests.
  virtual void on_embedding(uint32_t index, std::span<const float> embedding) = 0;
  virtual void on_done(const usage_counts& usage) = 0;
  virtual void on_error(engine_status code, std::string_view message) = 0;
};

// Streaming ids → text for one sequence (the plugin adapts engine::detokenizer to it).
class stream_decoder {
 public:
  virtual ~stream_decoder() = default;
  virtual std::string push(int32_t token) = 0;  // complete UTF-8 only
  virtual std::string finish() = 0;             // what was held back
};

// What the scheduler needs from a tokenizer. Implementations are immutable and thread-safe.
class text_codec {
 public:
  virtual ~text_codec() = default;
  virtual bool is_end_of_generation(int32_t token) const = 0;
  // continuation: the text follows a prompt (completions), so no leading space is stripped.
  virtual std::unique_ptr<stream_decoder> make_decoder(bool continuation) const = 0;
};

struct generate_request {
  uint64_t id = 0;
  bool embedding = false;              // pool hidden states instead of generating
  std::vector<std::vector<int32_t>> prompts;  // token ids per prompt, BOS included if wanted
  std::vector<std::string> echo_text;  // per prompt, emitted first when non-empty (completions echo)
  // Per prompt: the answer continues visible prompt text (completions whose prompt holds more than
  // special tokens), so its first token keeps its leading space. Missing entries mean false.
  std::vector<bool> continuation;
  sampling_params sampling;            // n choices per prompt: index = prompt * n + i
  // Prefix caching salt (the request body's `cache_salt`, as vLLM names it; the gateway may fill
  // it per API key): it starts the hash chain of every KV block, so requests with different
  // salts never share cached blocks. "" is a salt like any other.
  std::string cache_salt;
  std::shared_ptr<request_sink> sink;
};

}  // namespace moat::engine
