#include "engine/scheduler.h"

#include <algorithm>
#include <exception>
#include <span>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace moat::engine {

scheduler::scheduler(model_runner& runner, const text_codec& codec, scheduler_options options)
    : runner_(runner),
      codec_(codec),
      options_(options),
      max_ctx_(runner.max_ctx()),
      vocab_size_(runner.config().vocab_size),
      slot_total_(static_cast<size_t>(
          std::max(1, std::min(options.max_batch > 0 ? options.max_batch : runner.n_slots(),
                               runner.n_slots())))) {
  // Lowest slot first: pop_back takes the smallest id.
  for (size_t s = slot_total_; s-- > 0;) free_slots_.push_back(static_cast<int32_t>(s));
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
  s.kv_usage = static_cast<double>(s.running) / static_cast<double>(slot_total_);
  return s;
}

bool scheduler::has_work() const {
  if (!running_.empty()) return true;
  for (const auto& r : requests_)
    if (r->next_to_admit < r->seqs.size() && !free_slots_.empty()) return true;
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
  for (auto& r : requests_) {
    if (r->ended) continue;
    while (r->next_to_admit < r->seqs.size()) {
      if (free_slots_.empty()) return;  // first come, first served: later requests wait too
      sequence& seq = *r->seqs[r->next_to_admit++];
      seq.slot = free_slots_.back();
      free_slots_.pop_back();
      seq.pos = 0;
      seq.phase = sequence_phase::prefill;
      // Another choice of the same prompt, admitted while the first still prefills: copy its
      // KV prefix when it is done instead of computing the prompt again.
      if (r->next_to_admit >= 2 && !r->request.embedding && r->request.sampling.max_tokens != 0) {
        sequence& prev = *r->seqs[r->next_to_admit - 2];
        sequence* lead = prev.leader ? prev.leader : &prev;
        if (lead->prompt_index == seq.prompt_index && lead->phase == sequence_phase::prefill) {
          seq.leader = lead;
          seq.phase = sequence_phase::follow;
        }
      }
      running_.push_back(&seq);
      ++running_count_;
      seq.start(codec_);
      if (!r->request.embedding && r->request.sampling.max_tokens == 0) {
        seq.finish(finish_reason::length);
        release(seq);
      }
    }
    if (r->counted_waiting) {
      r->counted_waiting = false;
      --waiting_;
    }
  }
}

void scheduler::step() {
  // Item i of `items` belongs to running sequence owners[i].
  std::vector<forward_item> items, embed_items;
  std::vector<sequence*> owners, embed_owners;
  for (sequence* seq : running_) {
    if (seq->phase != sequence_phase::decode) continue;
    items.push_back({seq->slot, std::span<const int32_t>(&seq->next_token, 1), seq->pos, false});
    owners.push_back(seq);
  }
  int32_t budget = std::max(1, options_.prefill_chunk);
  for (sequence* seq : running_) {
    if (seq->phase != sequence_phase::prefill || budget <= 0) continue;
    const int32_t n = std::min(seq->prompt_remaining(), budget);
    budget -= n;
    std::span<const int32_t> chunk(seq->prompt().data() + seq->pos, static_cast<size_t>(n));
    forward_item item{seq->slot, chunk, seq->pos, false};
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
      if (seq.owner.ended) continue;
      const bool was_decode = seq.phase == sequence_phase::decode;
      seq.pos += static_cast<int32_t>(items[i].tokens.size());
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
      if (seq.prompt_remaining() == 0) {
        seq.emit_embedding();
        release(seq);
      }
    }
  }
}

// The leader finished its prompt: each follower takes a copy of the prompt's KV and samples its
// first token from the same logits (before the leader's sampler modifies them in place).
void scheduler::start_followers(sequence& lead, std::span<const float> logits) {
  for (sequence* f : running_) {
    if (f->phase != sequence_phase::follow || f->leader != &lead) continue;
    const int32_t n = static_cast<int32_t>(lead.prompt().size());
    try {
      runner_.copy_slot(lead.slot, f->slot, n);
    } catch (const std::exception& e) {
      spdlog::error("engine: copying a prompt's KV failed: {}", e.what());
      end_request(f->owner, engine_status::internal, "the model failed to run this batch");
      return;
    }
    f->pos = n;
    f->phase = sequence_phase::decode;
    f->leader = nullptr;
    follower_row_.assign(logits.begin(), logits.end());
    if (f->on_token(f->sampling.sample(follower_row_), max_ctx_, codec_)) release(*f);
  }
}

// A finished sequence gives its slot back; the last one of a request sends DONE.
void scheduler::release(sequence& seq) {
  if (seq.slot >= 0) {
    free_slots_.push_back(seq.slot);
    seq.slot = -1;
    --running_count_;
  }
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
    if (seq->slot >= 0) {
      free_slots_.push_back(seq->slot);
      seq->slot = -1;
      --running_count_;
    }
    seq->phase = sequence_phase::done;
  }
  if (r.counted_waiting) {
    r.counted_waiting = false;
    --waiting_;
  }
  r.request.sink->on_error(code, message);
}

void scheduler::sweep() {
  std::erase_if(running_, [](sequence* s) { return s->phase == sequence_phase::done; });
  std::erase_if(requests_, [](const std::unique_ptr<request_state>& r) { return r->ended; });
  // Keep the lowest slot ids on top so slot use is stable (it makes runs easy to compare).
  std::sort(free_slots_.begin(), free_slots_.end(), std::greater<>());
}

}  // namespace moat::engine
