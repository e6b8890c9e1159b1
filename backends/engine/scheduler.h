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
//      blocks at once and gets on_error(cancelled);
//   2. waiting sequences are admitted in arrival order (preempted ones first) while fewer than
//      max_batch run and the KV pool has the blocks of the whole prompt. With prefix caching, a
//      prompt's leading full blocks already in the cache (same tokens, same cache_salt) are
//      shared by reference and prefill starts after them; the last prompt token is always
//      computed, so its logits exist. Past max_queue waiting requests submit() says busy;
//   3. every decoding sequence that crosses into a new block takes one more block; when the
//      pool has none left, the most recently admitted sequence is preempted and requeued, its
//      device blocks freed. When the runner has a host KV store (model_runner::host_blocks(),
//      options.host_kv_mb) with room for the sequence's computed blocks, they are swapped out
//      to it and swapped back in, into fresh device blocks, when it is admitted again (nothing
//      is recomputed); otherwise (no store, store full, nothing computed yet, a copy failed)
//      it recomputes prompt + generated tokens, as vLLM's recompute preemption. Preempted
//      sequences, swapped or not, are readmitted oldest first and before any new request;
//   4. every decoding sequence contributes its one token and prefilling sequences contribute
//      chunks of their prompts up to prefill_chunk tokens in all, in admission order;
//   5. the forward pass runs once for the whole batch; blocks that became full are published in
//      the prefix cache; sequences that reached the end of a prompt or decoded a token sample
//      their next token; finished sequences drop their block references (published blocks stay
//      cached until the pool needs them).
// n > 1 choices of one prompt share its full blocks by reference; each extra choice gets its
// own copy of the partly filled last block. Sequences join and leave between steps. Sampling
// state is per sequence and the runner computes each row independently (and a recomputed prefix
// gives the logits decode gave), so at temperature 0 results do not depend on what else runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/kv_cache/block_pool.h"
#include "engine/kv_cache/swap_space.h"
#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/sequence.h"

namespace moat::engine {

struct scheduler_options {
  int32_t max_batch = 16;       // sequences running at once
  int32_t max_queue = 64;       // requests waiting for admission before submit() says busy
  int32_t prefill_chunk = 256;  // prompt tokens per step, over all prefilling sequences
  bool prefix_caching = true;   // share cached full blocks between prompts (block_pool.h)
  bool swap = true;             // preempt by swapping to the runner's host KV store when it has one
};

struct submit_result {
  engine_status code = engine_status::ok;
  std::string message;  // safe for clients: no paths, no payloads
};

struct scheduler_stats {
  uint32_t running = 0;   // sequences admitted and not finished (preempted ones excluded)
  uint32_t waiting = 0;   // requests not yet fully admitted
  double kv_usage = 0.0;  // referenced blocks / all blocks (cached, unreferenced ones are free)
  uint32_t kv_blocks_used = 0, kv_blocks_total = 0;
  uint32_t kv_blocks_peak = 0;         // most blocks referenced at once since the start
  uint64_t kv_blocks_allocated = 0;    // blocks handed out fresh (K/V computed into them)
  uint64_t prefix_cache_queries = 0;   // prompt tokens looked up in the prefix cache
  uint64_t prefix_cache_hits = 0;      // of those, tokens found cached (not computed)
  uint64_t preemptions = 0;            // sequences preempted for lack of blocks (swapped or not)
  uint64_t preemptions_recompute = 0;  // of those, requeued to recompute their context
  uint64_t swap_outs = 0, swap_ins = 0;                    // sequences moved to / from the host store
  uint64_t blocks_swapped_out = 0, blocks_swapped_in = 0;  // blocks those moves copied
  uint32_t swapped = 0;                // sequences whose KV is in the host store now
  uint32_t host_blocks_used = 0, host_blocks_total = 0;  // the host store (0 total: no swapping)
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
  int32_t block_count() const { return n_blocks_; }
  int32_t block_size() const { return block_size_; }
  // Prefix-cache counters (for metrics): prompt tokens looked up, and of those found cached.
  uint64_t prefix_cache_queries() const { return prefix_queries_.load(); }
  uint64_t prefix_cache_hits() const { return prefix_hits_.load(); }

 private:
  void run();
  void take_inbox(std::vector<std::unique_ptr<request_state>>& arrived, std::vector<uint64_t>& cancels);
  void apply_cancels(const std::vector<uint64_t>& cancels);
  void admit();
  bool try_admit(request_state& r, sequence& seq, bool fresh);
  void start_running(sequence& seq);
  bool grow_blocks();
  void preempt(sequence& seq);
  // scheduler_swap.cpp: preemption to the runner's host KV store and back.
  bool swap_out(sequence& seq);
  bool swap_in(sequence& seq);
  void free_host_blocks(sequence& seq);
  void publish_full_blocks(sequence& seq);
  void step();
  void start_followers(sequence& lead, std::span<const float> logits);
  void drop_blocks(sequence& seq);
  void release(sequence& seq);
  void publish_stats();
  void end_request(request_state& state, engine_status code, const std::string& message);
  void sweep();
  bool has_work() const;

  model_runner& runner_;
  const text_codec& codec_;
  const scheduler_options options_;
  const int32_t max_ctx_;
  const int32_t vocab_size_;
  const int32_t n_blocks_, block_size_;
  const size_t running_cap_;

  // Shared with submitting threads, under mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<request_state>> inbox_;
  std::vector<uint64_t> cancel_inbox_;
  bool stopping_ = false;
  std::atomic<uint32_t> waiting_{0};
  std::atomic<uint32_t> running_count_{0};
  std::atomic<uint32_t> blocks_used_{0}, blocks_peak_{0};
  std::atomic<uint64_t> blocks_allocated_{0}, prefix_queries_{0}, prefix_hits_{0}, preemptions_{0};
  std::atomic<uint64_t> recomputes_{0}, swap_outs_{0}, swap_ins_{0}, blocks_out_{0}, blocks_in_{0};
  std::atomic<uint32_t> swapped_{0}, host_used_{0};

  // Engine thread only.
  std::list<std::unique_ptr<request_state>> requests_;  // arrival order
  std::vector<sequence*> running_;                      // admission order
  std::deque<sequence*> preempted_;                     // oldest first; admitted before new ones
  kv_cache::block_pool pool_;
  kv_cache::swap_space host_;                           // the runner's host store (may be empty)
  std::vector<float> logits_;
  std::vector<float> hidden_;
  std::vector<float> follower_row_;

  std::thread thread_;
};

}  // namespace moat::engine
