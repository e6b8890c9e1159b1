#include "engine/scheduler.h"

#include <algorithm>
#include <exception>
#include <span>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/kv_cache/prefix_hash.h"

namespace moat::engine {

scheduler::scheduler(model_runner& runner, const text_codec& codec, scheduler_options options)
    : runner_(runner),
      codec_(codec),
      options_(options),
      max_ctx_(runner.max_ctx()),
      vocab_size_(runner.config().vocab_size),
      n_blocks_(runner.n_blocks()),
      block_size_(runner.block_size()),
      running_cap_(static_cast<size_t>(std::max(1, options.max_batch))),
      pool_(runner.n_blocks(), runner.block_size(), options.prefix_caching),
      host_(options.swap ? runner.host_blocks() : 0) {
  publish_stats();
  thread_ = std::thread([this] { run(); });
}

scheduler::~scheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

submit_result scheduler::submit(generate_request request) {
  if (!request.sink) return {engine_status::internal, "request has no event sink"};
  if (request.prompts.empty()) return {engine_status::invalid_argument, "the prompt is empty"};
  if (!request.embedding && request.sampling.n < 1)
    return {engine_status::invalid_argument, "n must be at least 1"};
  for (const auto& prompt : request.prompts) {
    if (prompt.empty()) return {engine_status::invalid_argument, "the prompt is empty"};
    // A generation needs room for at least one answer token; an embedding only for the prompt.
    const size_t limit = request.embedding ? static_cast<size_t>(max_ctx_)
                                           : static_cast<size_t>(max_ctx_) - 1;
    if (prompt.size() > limit) {
      return {engine_status::context_length,
              fmt::format("This model's maximum context length is {} tokens. However, your "
                          "prompt has {} tokens{}.",
                          max_ctx_, prompt.size(),
                          request.embedding ? "" : ", which leaves no room for the answer")};
    }
    for (int32_t t : prompt)
      if (t < 0 || t >= vocab_size_)
        return {engine_status::invalid_argument,
                fmt::format("token id {} is outside the vocabulary (0..{})", t, vocab_size_ - 1)};
  }
  for (const auto& [token, bias] : request.sampling.logit_bias)
    if (token < 0 || token >= vocab_size_)
      return {engine_status::invalid_argument,
              fmt::format("logit_bias names token {}, outside the vocabulary (0..{})", token,
                          vocab_size_ - 1)};

  auto state = std::make_unique<request_state>();
  state->request = std::move(request);
  const auto& req = state->request;
  const uint32_t per_prompt = req.embedding ? 1 : req.sampling.n;
  for (uint32_t p = 0; p < req.prompts.size(); ++p)
    for (uint32_t i = 0; i < per_prompt; ++i)
      state->seqs.push_back(std::make_unique<sequence>(*state, p * per_prompt + i, p, vocab_size_));
  for (const auto& prompt : req.prompts) state->usage.prompt_tokens += prompt.size();
  state->hash_root = kv_cache::prefix_root(req.cache_salt);

  {
    std::lock_guard lock(mutex_);
    if (stopping_) return {engine_status::unavailable, "the backend is shutting down"};
    if (options_.max_queue >= 0 && waiting_.load() >= static_cast<uint32_t>(options_.max_queue))
      return {engine_status::busy, "the backend's queue is full; retry later"};
    ++waiting_;
    inbox_.push_back(std::move(state));
  }
  wake_.notify_one();
  return {};
}

void scheduler::cancel(uint64_t request_id) {
  {
    std::lock_guard lock(mutex_);
    cancel_inbox_.push_back(request_id);
  }
  wake_.notify_one();
}

scheduler_stats scheduler::stats() const {
  scheduler_stats s;
  s.running = running_count_.load();
  s.waiting = waiting_.load();
  s.kv_blocks_used = blocks_used_.load();
  s.kv_blocks_total = static_cast<uint32_t>(n_blocks_);
  s.kv_blocks_peak = blocks_peak_.load();
  s.kv_usage = static_cast<double>(s.kv_blocks_used) / static_cast<double>(n_blocks_);
  s.kv_blocks_allocated = blocks_allocated_.load();
  s.prefix_cache_queries = prefix_queries_.load();
  s.prefix_cache_hits = prefix_hits_.load();
  s.preemptions = preemptions_.load();
  s.preemptions_recompute = recomputes_.load();
  s.swap_outs = swap_outs_.load();
  s.swap_ins = swap_ins_.load();
  s.blocks_swapped_out = blocks_out_.load();
  s.blocks_swapped_in = blocks_in_.load();
  s.swapped = swapped_.load();
  s.host_blocks_used = host_used_.load();
  s.host_blocks_total = static_cast<uint32_t>(host_.total());
  return s;
}

void scheduler::publish_stats() {
  const auto used = static_cast<uint32_t>(pool_.used());
  blocks_used_.store(used);
  if (used > blocks_peak_.load()) blocks_peak_.store(used);
  blocks_allocated_.store(pool_.allocations());
  host_used_.store(static_cast<uint32_t>(host_.used()));
}

bool scheduler::has_work() const {
  if (!running_.empty()) return true;
  // Nothing runs, so every block is free or evictable: whatever waits can be admitted.
  if (!preempted_.empty()) return true;
  for (const auto& r : requests_)
    if (!r->ended && r->next_to_admit < r->seqs.size()) return true;
  return false;
}

void scheduler::take_inbox(std::vector<std::unique_ptr<request_state>>& arrived,
                           std::vector<uint64_t>& cancels) {
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [&] {
    return stopping_ || !inbox_.empty() || !cancel_inbox_.empty() || has_work();
  });
  arrived.swap(inbox_);
  cancels.swap(cancel_inbox_);
}

void scheduler::run() {
  std::vector<std::unique_ptr<request_state>> arrived;
  std::vector<uint64_t> cancels;
  for (;;) {
    arrived.clear();
    cancels.clear();
    take_inbox(arrived, cancels);
    for (auto& r : arrived) requests_.push_back(std::move(r));
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    try {
      apply_cancels(cancels);
      admit();
      step();
    } catch (const std::exception& e) {
      // Nothing may take the engine thread down: the requests in flight fail, serving goes on.
      spdlog::error("engine: step failed: {}", e.what());
      for (auto& r : requests_)
        if (!r->ended && r->next_to_admit > 0)
          end_request(*r, engine_status::internal, "the engine failed while running this request");
    }
    sweep();
  }
  // Shutting down: queued requests (including ones that arrived with the stop) end now.
  for (auto& r : requests_)
    if (!r->ended) end_request(*r, engine_status::unavailable, "the backend is shutting down");
  requests_.clear();
  // Requests that raced with the shutdown: their events go out without the lock held, so a host
  // that calls cancel() from its callback cannot deadlock.
  std::vector<std::unique_ptr<request_state>> late;
  {
    std::lock_guard lock(mutex_);
    late.swap(inbox_);
  }
  for (auto& r : late) end_request(*r, engine_status::unavailable, "the backend is shutting down");
}

void scheduler::apply_cancels(const std::vector<uint64_t>& cancels) {
  if (cancels.empty()) return;
  std::unordered_set<uint64_t> ids(cancels.begin(), cancels.end());
  for (auto& r : requests_)
    if (!r->ended && ids.count(r->request.id))
      end_request(*r, engine_status::cancelled, "the request was cancelled");
  sweep();
}

void scheduler::admit() {
  while (!preempted_.empty()) {
    sequence& seq = *preempted_.front();
    const bool back = seq.phase == sequence_phase::swapped ? swap_in(seq) : try_admit(seq.owner, seq, false);
    if (!back) return;  // the oldest waits first
    preempted_.pop_front();
  }
  for (auto& r : requests_) {
    if (r->ended) continue;
    while (r->next_to_admit < r->seqs.size()) {
      // First come, first served: when this one cannot run yet, later requests wait too.
      if (!try_admit(*r, *r->seqs[r->next_to_admit], true)) return;
      ++r->next_to_admit;
    }
    if (r->counted_waiting) {
      r->counted_waiting = false;
      --waiting_;
    }
  }
}

// Admits `seq` when a batch place and the blocks of its whole prompt (or recompute context) are
// there; returns false, with nothing changed, otherwise.
bool scheduler::try_admit(request_state& r, sequence& seq, bool fresh) {
  if (running_.size() >= running_cap_) return false;
  const auto& req = r.request;
  const int32_t bs = block_size_;
  const bool generates = !req.embedding && req.sampling.max_tokens != 0;
  if (!generates && !req.embedding) {
    // max_tokens == 0: nothing to compute (completions may still echo the prompt).
    running_.push_back(&seq);
    seq.running = true;
    ++running_count_;
    seq.started = true;
    seq.start(codec_);
    seq.finish(finish_reason::length);
    release(seq);
    return true;
  }

  // Another choice of the same prompt, admitted while the first still prefills: it shares the
  // leader's prompt blocks when they are done instead of computing the prompt again.
  if (fresh && generates && r.next_to_admit >= 1) {
    sequence& prev = *r.seqs[r.next_to_admit - 1];
    sequence* lead = prev.leader ? prev.leader : &prev;
    if (lead->prompt_index == seq.prompt_index && lead->phase == sequence_phase::prefill && lead->generated == 0) {
      const bool partial = lead->prompt().size() % static_cast<size_t>(bs) != 0;
      if (partial) {
        if (pool_.available() < 1) return false;
        seq.cow_block = pool_.allocate();
      }
      seq.leader = lead;
      seq.phase = sequence_phase::follow;
      seq.pos = 0;
      start_running(seq);
      return true;
    }
  }

  // Prefix lookup: the leading full blocks of the context, up to the one before the block that
  // holds the last token (that token is always computed so its logits exist). Embeddings need
  // every token's hidden state and look nothing up.
  const auto& ctx = seq.context();
  const auto len = static_cast<int32_t>(ctx.size());
  std::vector<int32_t> hits;
  uint64_t chain = r.hash_root;
  int32_t revived = 0;  // hits with no reference now: taking them shrinks what is available
  if (pool_.prefix_caching() && !req.embedding) {
    const int32_t max_hits = (len - 1) / bs;
    for (int32_t i = 0; i < max_hits; ++i) {
      std::span<const int32_t> toks(ctx.data() + static_cast<size_t>(i) * bs, static_cast<size_t>(bs));
      const uint64_t h = kv_cache::block_hash(chain, toks);
      const int32_t b = pool_.lookup(h, chain, toks);
      if (b < 0) break;
      hits.push_back(b);
      if (pool_.refcount(b) == 0) ++revived;
      chain = h;
    }
  }
  const int32_t needed = (len + bs - 1) / bs - static_cast<int32_t>(hits.size());
  if (pool_.available() - revived < needed) return false;

  if (pool_.prefix_caching() && !req.embedding) {
    prefix_queries_ += static_cast<uint64_t>(len);
    prefix_hits_ += static_cast<uint64_t>(hits.size()) * static_cast<uint64_t>(bs);
  }
  seq.blocks.clear();
  for (int32_t b : hits) {
    pool_.ref(b);
    seq.blocks.push_back(b);
  }
  for (int32_t i = 0; i < needed; ++i) seq.blocks.push_back(pool_.allocate());
  seq.n_published = static_cast<int32_t>(hits.size());
  seq.chain_hash = chain;
  seq.pos = static_cast<int32_t>(hits.size()) * bs;
  seq.phase = sequence_phase::prefill;
  seq.leader = nullptr;
  start_running(seq);
  return true;
}

// Puts an admitted sequence into the running batch; its first admission (not a recompute after
// preemption) starts its output.
void scheduler::start_running(sequence& seq) {
  running_.push_back(&seq);
  seq.running = true;
  ++running_count_;
  if (!seq.started) {
    seq.started = true;
    seq.start(codec_);
  }
  publish_stats();
}

// Gives every decoding sequence the block its next position needs, preempting the most recently
// admitted sequences while the pool has none. Returns false when nothing could be made to fit.
bool scheduler::grow_blocks() {
  std::erase_if(running_, [](sequence* s) { return s->phase == sequence_phase::done; });
  for (size_t i = 0; i < running_.size(); ++i) {
    sequence& seq = *running_[i];
    if (seq.phase != sequence_phase::decode) continue;
    if (static_cast<size_t>(seq.pos / block_size_) < seq.blocks.size()) continue;
    for (;;) {
      const int32_t b = pool_.allocate();
      if (b >= 0) {
        seq.blocks.push_back(b);
        break;
      }
      // The youngest sequence loses the least work; embeddings are never preempted (their
      // pooled sum cannot be recomputed in part), so they are skipped as victims.
      sequence* victim = nullptr;
      for (size_t j = running_.size(); j-- > 0;) {
        sequence* c = running_[j];
        if (c->owner.request.embedding) continue;
        victim = c;
        break;
      }
      if (victim == nullptr) return false;
      const bool self = victim == &seq;
      preempt(*victim);
      if (self) {
        --i;  // running_[i] is gone; continue with what follows it
        break;
      }
    }
  }
  publish_stats();
  return true;
}

// Frees every device block of `seq` and requeues it (before any request not yet admitted):
// swapped out to the host store when it has room, else to recompute its context. A leader takes
// its waiting followers with it.
void scheduler::preempt(sequence& seq) {
  if (seq.phase != sequence_phase::follow) {
    std::vector<sequence*> followers;  // collected first: preempt() edits running_
    for (sequence* f : running_)
      if (f->phase == sequence_phase::follow && f->leader == &seq) followers.push_back(f);
    for (auto it = followers.rbegin(); it != followers.rend(); ++it) preempt(**it);  // youngest first
  }
  if (!swap_out(seq)) {
    const bool decoded = seq.phase == sequence_phase::decode;
    drop_blocks(seq);
    if (decoded) seq.prepare_recompute();
    seq.pos = 0;
    seq.leader = nullptr;
    seq.phase = sequence_phase::waiting;
    ++recomputes_;
  }
  std::erase(running_, &seq);
  seq.running = false;
  --running_count_;
  ++preemptions_;
  // Victims go youngest first, so each one preempted later is older: it goes in front.
  preempted_.push_front(&seq);
  spdlog::debug("engine: preempted request {} choice {} (KV pool full, {})", seq.owner.request.id, seq.index,
                seq.phase == sequence_phase::swapped ? "swapped to host" : "to recompute");
}

void scheduler::drop_blocks(sequence& seq) {
  for (int32_t b : seq.blocks) pool_.unref(b);
  seq.blocks.clear();
  if (seq.cow_block >= 0) pool_.unref(seq.cow_block);
  seq.cow_block = -1;
  seq.n_published = 0;
  free_host_blocks(seq);
  publish_stats();  // before any terminal event, so a client that saw it sees the blocks back
}

// Hashes and publishes the blocks that became full (all their positions computed).
void scheduler::publish_full_blocks(sequence& seq) {
  if (!pool_.prefix_caching()) return;
  const int32_t bs = block_size_;
  std::vector<int32_t> toks(static_cast<size_t>(bs));
  while ((seq.n_published + 1) * bs <= seq.pos && static_cast<size_t>(seq.n_published) < seq.blocks.size()) {
    const int32_t first = seq.n_published * bs;
    for (int32_t i = 0; i < bs; ++i) toks[static_cast<size_t>(i)] = seq.token_at(first + i);
    const uint64_t h = kv_cache::block_hash(seq.chain_hash, toks);
    pool_.publish(seq.blocks[static_cast<size_t>(seq.n_published)], h, seq.chain_hash, toks);
    seq.chain_hash = h;
    ++seq.n_published;
  }
}

void scheduler::step() {
  if (!grow_blocks()) {
    spdlog::error("engine: the KV pool cannot hold the running sequences");
    for (sequence* seq : running_)
      end_request(seq->owner, engine_status::internal, "the KV cache cannot hold this request");
    return;
  }
  // Item i of `items` belongs to running sequence owners[i].
  std::vector<forward_item> items, embed_items;
  std::vector<sequence*> owners, embed_owners;
  for (sequence* seq : running_) {
    if (seq->phase != sequence_phase::decode) continue;
    items.push_back({.tokens = std::span<const int32_t>(&seq->next_token, 1), .start_pos = seq->pos,
                     .blocks = seq->blocks});
    owners.push_back(seq);
  }
  int32_t budget = std::max(1, options_.prefill_chunk);
  for (sequence* seq : running_) {
    if (seq->phase != sequence_phase::prefill || budget <= 0) continue;
    const int32_t n = std::min(seq->prompt_remaining(), budget);
    budget -= n;
    std::span<const int32_t> chunk(seq->context().data() + seq->pos, static_cast<size_t>(n));
    forward_item item{.tokens = chunk, .start_pos = seq->pos, .blocks = seq->blocks};
    if (seq->owner.request.embedding) {
      embed_items.push_back(item);
      embed_owners.push_back(seq);
    } else {
      items.push_back(item);
      owners.push_back(seq);
    }
  }

  if (!items.empty()) {
    const size_t vocab = static_cast<size_t>(vocab_size_);
    logits_.resize(model_runner::logits_rows(items) * vocab);
    try {
      runner_.forward(items, logits_);
    } catch (const std::exception& e) {
      spdlog::error("engine: forward pass failed: {}", e.what());
      for (sequence* seq : owners)
        end_request(seq->owner, engine_status::internal, "the model failed to run this batch");
      items.clear();
    }
    for (size_t i = 0; i < items.size(); ++i) {
      sequence& seq = *owners[i];
      if (seq.owner.ended || seq.phase == sequence_phase::done) continue;
      const bool was_decode = seq.phase == sequence_phase::decode;
      seq.pos += static_cast<int32_t>(items[i].tokens.size());
      publish_full_blocks(seq);
      if (!was_decode && seq.prompt_remaining() > 0) continue;  // more prompt chunks to come
      seq.phase = sequence_phase::decode;
      std::span<float> row(logits_.data() + i * vocab, vocab);
      if (!was_decode) start_followers(seq, row);
      if (seq.on_token(seq.sampling.sample(row), max_ctx_, codec_)) release(seq);
    }
  }

  if (!embed_items.empty()) {
    const size_t hidden = static_cast<size_t>(runner_.config().hidden_size);
    size_t rows = 0;
    for (const auto& it : embed_items) rows += it.tokens.size();
    hidden_.resize(rows * hidden);
    try {
      runner_.hidden_states(embed_items, hidden_);
    } catch (const std::exception& e) {
      spdlog::error("engine: embedding pass failed: {}", e.what());
      for (sequence* seq : embed_owners)
        end_request(seq->owner, engine_status::internal, "the model failed to run this batch");
      embed_items.clear();
    }
    size_t row = 0;
    for (size_t i = 0; i < embed_items.size(); ++i) {
      sequence& seq = *embed_owners[i];
      const size_t n = embed_items[i].tokens.size();
      if (seq.owner.ended) {
        row += n;
        continue;
      }
      for (size_t t = 0; t < n; ++t, ++row)
        seq.pool(std::span<const float>(hidden_.data() + row * hidden, hidden));
      seq.pos += static_cast<int32_t>(n);
      publish_full_blocks(seq);
      if (seq.prompt_remaining() == 0) {
        seq.emit_embedding();
        release(seq);
      }
    }
  }
  publish_stats();
}

// The leader finished its prompt: each follower takes a reference to the prompt's full blocks,
// a copy of the partly filled last block, and samples its first token from the same logits
// (before the leader's sampler modifies them in place).
void scheduler::start_followers(sequence& lead, std::span<const float> logits) {
  const int32_t n = static_cast<int32_t>(lead.prompt().size());
  const int32_t full = n / block_size_, rest = n % block_size_;
  for (sequence* f : running_) {
    if (f->phase != sequence_phase::follow || f->leader != &lead) continue;
    if (rest > 0) {
      try {
        runner_.copy_block(lead.blocks[static_cast<size_t>(full)], f->cow_block, rest);
      } catch (const std::exception& e) {
        spdlog::error("engine: copying a prompt's KV block failed: {}", e.what());
        end_request(f->owner, engine_status::internal, "the model failed to run this batch");
        return;
      }
    }
    f->blocks.assign(lead.blocks.begin(), lead.blocks.begin() + full);
    for (int32_t b : f->blocks) pool_.ref(b);
    if (rest > 0) f->blocks.push_back(f->cow_block);
    f->cow_block = -1;
    f->n_published = std::min(lead.n_published, full);
    f->chain_hash = lead.chain_hash;
    f->pos = n;
    f->phase = sequence_phase::decode;
    f->leader = nullptr;
    follower_row_.assign(logits.begin(), logits.end());
    if (f->on_token(f->sampling.sample(follower_row_), max_ctx_, codec_)) release(*f);
  }
}

// A finished sequence drops its block references; the last one of a request sends DONE.
void scheduler::release(sequence& seq) {
  if (seq.running) --running_count_;
  seq.running = false;
  drop_blocks(seq);
  seq.phase = sequence_phase::done;
  request_state& r = seq.owner;
  if (++r.finished == r.seqs.size() && !r.ended) {
    r.ended = true;
    r.request.sink->on_done(r.usage);
  }
}

void scheduler::end_request(request_state& r, engine_status code, const std::string& message) {
  if (r.ended) return;
  r.ended = true;
  for (auto& seq : r.seqs) {
    if (seq->running) --running_count_;
    seq->running = false;
    drop_blocks(*seq);
    seq->phase = sequence_phase::done;
  }
  if (r.counted_waiting) {
    r.counted_waiting = false;
    --waiting_;
  }
  publish_stats();
  r.request.sink->on_error(code, message);
}

void scheduler::sweep() {
  std::erase_if(running_, [](sequence* s) { return s->phase == sequence_phase::done; });
  std::erase_if(preempted_, [](sequence* s) { return s->phase == sequence_phase::done; });
  std::erase_if(requests_, [](const std::unique_ptr<request_state>& r) { return r->ended; });
}

}  // namespace moat::engine
