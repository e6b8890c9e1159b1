// moat/engine/scheduler.h — continuous batching over a model_runner on one engine thread.
//
//   moat::engine::scheduler sched(runner, codec, {.max_batch = 16, .max_queue = 64});
//   auto st = sched.submit(std::move(request));   // any thread; never blocks on generation
//   if (st.code != engine_status::ok) reply_error(st.code, st.message);
//   sched.cancel(request_id);                      // any thread; honoured within one step
//   // ~scheduler: every request still queued or running gets on_error(unavailable) first.
//
// Each step (one batched forward call):
//   1. new requests and cancellations are taken from the inbox; a cancelled request frees its
//      slots at once and gets on_error(cancelled);
//   2. waiting sequences are admitted in arrival order while a KV slot is free (the KV budget:
//      the runner holds n_slots() slots of max_ctx() positions each, sized from kv_cache_mb);
//      a request that cannot fit waits; past max_queue waiting requests submit() says busy;
//   3. every decoding sequence contributes its one token and prefilling sequences contribute
//      chunks of their prompts up to prefill_chunk tokens in all, in admission order;
//   4. the forward pass runs once for the whole batch; sequences that reached the end of a prompt
//      or decoded a token sample their next token; finished sequences free their slots.
// Sequences join and leave between steps. Sampling state is per sequence and the runner computes
// each row independently, so at temperature 0 results do not depend on what else is running.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/sequence.h"

namespace moat::engine {

struct scheduler_options {
  int32_t max_batch = 16;       // sequences running at once (also bounded by runner.n_slots())
  int32_t max_queue = 64;       // requests waiting for a slot before submit() says busy
  int32_t prefill_chunk = 256;  // prompt tokens per step, over all prefilling sequences
};

struct submit_result {
  engine_status code = engine_status::ok;
  std::string message;  // safe for clients: no paths, no payloads
};

struct scheduler_stats {
  uint32_t running = 0;   // sequences holding a slot
  uint32_t waiting = 0;   // requests not yet fully admitted
  double kv_usage = 0.0;  // fraction of slots in use
};

class scheduler {
 public:
  // runner and codec must outlive the scheduler. Starts the engine thread.
  scheduler(model_runner& runner, const text_codec& codec, scheduler_options options);
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // Validates (prompt lengths against the context, token ids, the queue bound) and enqueues.
  // On ok, events follow on the engine thread; otherwise none do.
  submit_result submit(generate_request request);
  void cancel(uint64_t request_id);
  scheduler_stats stats() const;

  int32_t max_ctx() const { return max_ctx_; }
  int32_t slot_count() const { return static_cast<int32_t>(slot_total_); }

 private:
  void run();
  void take_inbox(std::vector<std::unique_ptr<request_state>>& arrived, std::vector<uint64_t>& cancels);
  void apply_cancels(const std::vector<uint64_t>& cancels);
  void admit();
  void step();
  void start_followers(sequence& lead, std::span<const float> logits);
  void release(sequence& seq);
  void end_request(request_state& state, engine_status code, const std::string& message);
  void sweep();
  bool has_work() const;

  model_runner& runner_;
  const text_codec& codec_;
  const scheduler_options options_;
  const int32_t max_ctx_;
  const int32_t vocab_size_;
  const size_t slot_total_;

  // Shared with submitting threads, under mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<request_state>> inbox_;
  std::vector<uint64_t> cancel_inbox_;
  bool stopping_ = false;
  std::atomic<uint32_t> waiting_{0};
  std::atomic<uint32_t> running_count_{0};

  // Engine thread only.
  std::list<std::unique_ptr<request_state>> requests_;  // arrival order
  std::vector<sequence*> running_;                      // admission order
  std::vector<int32_t> free_slots_;
  std::vector<float> logits_;
  std::vector<float> hidden_;
  std::vector<float> follower_row_;

  std::thread thread_;
};

}  // namespace moat::engine
