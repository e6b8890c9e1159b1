// moat/engine/sequence.h — the state of one choice (or one embedding input) inside the scheduler,
// and the per-token bookkeeping that turns sampled ids into events: streaming detokenization,
// stop strings, EOS, max_tokens and the context limit.
//
//   sequence& s = *state.seqs[i];
//   s.blocks.push_back(pool.allocate());              // the scheduler assigns KV blocks
//   ... forward, sample ...
//   if (s.on_token(result, max_ctx, codec)) release(s);   // true: the sequence finished
//
// Output conventions (as vLLM's OpenAI server behaves):
//  - an end-of-generation token ends the choice with finish_reason stop; it counts in
//    usage.completion_tokens but adds no text, token or logprob to the deltas;
//  - a stop string ends the choice with stop; neither it nor what follows is emitted, and the
//    tokens whose text vanished into it are not reported either;
//  - max_tokens, or prompt + answer reaching the context, ends the choice with length;
//  - text held back (an unfinished UTF-8 character, a possible stop-string prefix) travels with
//    the tokens that produced it, in the delta that finally releases it.
//
// Ownership: a request_state owns its sequences and the request (prompts, sink); the scheduler
// owns the request_states. Used only on the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/request.h"
#include "engine/sampling.h"
#include "engine/stop_matcher.h"

namespace moat::engine {

struct request_state;

// follow: a choice n > 1 waiting for the first choice of its prompt (its leader) to finish the
// prompt; it then shares the leader's full prompt blocks by reference and takes a copy of the
// partly filled last one (copy-on-write at the block level), so a prompt is computed once.
// waiting also marks a preempted sequence: its blocks were freed and it recomputes
// context() (prompt + the tokens it already generated) when admitted again.
// swapped: preempted with its KV moved to the runner's host store (host_blocks); it resumes in
// `resumes` (prefill or decode) at the same pos once swapped back in, nothing recomputed.
enum class sequence_phase { waiting, prefill, follow, decode, swapped, done };

class sequence {
 public:
  sequence(request_state& owner, uint32_t index, uint32_t prompt_index, int32_t vocab_size);

  // Called once when the sequence is first admitted: sets up the decoder and emits the echo text.
  void start(const text_codec& codec);

  // Handles one sampled token; emits deltas and the finish event. Returns true when finished.
  bool on_token(const sample_result& sampled, int32_t max_ctx, const text_codec& codec);

  // Ends the sequence with `reason` (used for max_tokens == 0 and by on_token); flushes text.
  void finish(finish_reason reason);

  // Adds one hidden-state row [hidden] to the embedding sum.
  void pool(std::span<const float> row);
  // Emits the mean-pooled, L2-normalized embedding.
  void emit_embedding();

  const std::vector<int32_t>& prompt() const;
  // What prefill feeds: the prompt, or after a preemption the prompt and every generated token
  // (the last one included, so the prefill ends with the logits decode would have produced).
  const std::vector<int32_t>& context() const { return recompute_.empty() ? prompt() : recompute_; }
  int32_t prompt_remaining() const { return static_cast<int32_t>(context().size()) - pos; }
  // The token at position p (p < prompt size + generated tokens).
  int32_t token_at(int32_t p) const;
  // Preemption: the next prefill recomputes prompt + generated tokens.
  void prepare_recompute();

  request_state& owner;
  const uint32_t index;         // choice index (prompt * n + i) or embedding input index
  const uint32_t prompt_index;
  std::vector<int32_t> blocks;  // KV block table: position p is in blocks[p / block_size]
  int32_t cow_block = -1;       // follow: the block that receives the copy of the leader's last one
  int32_t n_published = 0;      // leading blocks already hashed (published or found in the cache)
  uint64_t chain_hash = 0;      // hash of block n_published - 1 (the salt's root when 0 blocks)
  bool started = false;         // start() ran
  bool running = false;         // in the scheduler's running set (counted in stats().running)
  int32_t pos = 0;              // positions of this sequence already in its KV blocks
  int32_t next_token = -1;      // decode: the token fed at position `pos` in the next step
  sequence_phase phase = sequence_phase::waiting;
  sequence_phase resumes = sequence_phase::waiting;  // swapped: the phase it goes back to
  std::vector<int32_t> host_blocks;  // swapped: host store blocks holding positions [0, pos)
  int32_t generated = 0;
  sequence* leader = nullptr;   // follow: whose prompt KV this sequence copies
  sampler sampling;

 private:
  void emit(std::string text, bool final_delta);

  std::vector<int32_t> outputs_;              // every sampled token, in order
  std::vector<int32_t> recompute_;            // after a preemption: prompt + outputs_
  std::unique_ptr<stream_decoder> decoder_;
  stop_matcher stops_;
  std::vector<int32_t> pending_tokens_;       // sampled, not yet reported in a delta
  std::vector<logprob_entry> pending_logprobs_;
  std::vector<double> pooled_;                // embedding: sum of hidden rows
  int32_t pooled_rows_ = 0;
};

// One submitted request and its sequences.
struct request_state {
  generate_request request;
  std::vector<std::unique_ptr<sequence>> seqs;
  size_t next_to_admit = 0;  // seqs before this have been admitted (they may be preempted since)
  uint64_t hash_root = 0;    // kv_cache::prefix_root(request.cache_salt)
  size_t finished = 0;
  usage_counts usage;
  bool ended = false;        // the terminal event was sent
  bool counted_waiting = true;
};

// Mean of `rows` summed rows, scaled to unit length (a zero vector stays zero).
std::vector<float> mean_pool_normalize(std::span<const double> sum, int32_t rows);

}  // namespace moat::engine
