// Fakes at the scheduler's seams: a paged model_runner whose "KV cache" holds the token id of
// every (block, offset) and whose logits are a function of the whole token history read back
// through the item's block table (so a wrong KV position, a chunking bug, a wrong block table,
// a wrongly shared or stale block changes the output), a text codec mapping ids to letters, and
// a sink recording events.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "engine/request.h"

namespace moat::engine::testing {

// Token 0 is end-of-generation; token t > 0 decodes to the letter 'a' + (t - 1) % 26.
class fake_codec : public text_codec {
 public:
  class decoder : public stream_decoder {
   public:
    std::string push(int32_t t) override { return std::string(1, static_cast<char>('a' + (t - 1) % 26)); }
    std::string finish() override { return {}; }
  };
  bool is_end_of_generation(int32_t t) const override { return t == 0; }
  std::unique_ptr<stream_decoder> make_decoder(bool) const override { return std::make_unique<decoder>(); }
};

class fake_runner : public model_runner {
 public:
  // A pool of `slots` whole sequences of `ctx` positions, in blocks of `block_size`.
  fake_runner(int32_t slots, int32_t ctx, int32_t vocab = 32, int32_t block_size = 16)
      : ctx_(ctx), block_size_(block_size), n_blocks_(slots * ((ctx + block_size - 1) / block_size)) {
    cfg_.vocab_size = vocab;
    cfg_.hidden_size = 4;
    store_.assign(static_cast<size_t>(n_blocks_) * static_cast<size_t>(block_size_), -1);
  }

  const model_config& config() const override { return cfg_; }
  int32_t max_ctx() const override { return ctx_; }
  int32_t n_blocks() const override { return n_blocks_; }
  int32_t block_size() const override { return block_size_; }
  size_t kv_bytes_per_token() const override { return 64; }

  // The next token the fake "model" prefers after `history`: any change in history changes it.
  static int32_t preferred(const std::vector<int32_t>& history, int32_t vocab) {
    uint64_t h = 1469598103934665603ULL;
    for (int32_t t : history) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ULL;
    return 1 + static_cast<int32_t>(h % static_cast<uint64_t>(vocab - 1));  // never EOS
  }

  void forward(std::span<const forward_item> items, std::span<float> logits) override {
    std::unique_lock lock(mutex_);
    gate_.wait(lock, [&] { return !paused_; });
    if (fail_next_) {
      fail_next_ = false;
      throw std::runtime_error("injected failure");
    }
    record(items);
    const size_t vocab = static_cast<size_t>(cfg_.vocab_size);
    size_t row = 0;
    for (const auto& it : items) {
      const auto h = write(it);
      for (size_t t = 0; t < it.tokens.size(); ++t) {
        if (!it.all_logits && t + 1 < it.tokens.size()) continue;
        std::vector<int32_t> prefix(h.begin(), h.begin() + it.start_pos + static_cast<int32_t>(t) + 1);
        const int32_t best = preferred(prefix, cfg_.vocab_size);
        for (size_t v = 0; v < vocab; ++v)
          logits[row * vocab + v] = (static_cast<int32_t>(v) == best ? 4.0f : 0.0f) +
                                    0.01f * static_cast<float>((v * 7 + prefix.size()) % 5);
        ++row;
      }
    }
    ++steps_;
    changed_.notify_all();
  }

  void hidden_states(std::span<const forward_item> items, std::span<float> hidden) override {
    std::lock_guard lock(mutex_);
    record(items);
    size_t row = 0;
    for (const auto& it : items) {
      write(it);
      for (int32_t t : it.tokens) {
        // Row of token t: (t, 1, 0, 0); its mean over a prompt is easy to predict.
        float* r = hidden.data() + row++ * 4;
        r[0] = static_cast<float>(t);
        r[1] = 1.0f;
        r[2] = r[3] = 0.0f;
      }
    }
  }

  void copy_block(int32_t from, int32_t to, int32_t n) override {
    std::lock_guard lock(mutex_);
    if (from < 0 || from >= n_blocks_ || to < 0 || to >= n_blocks_ || n < 0 || n > block_size_)
      throw std::runtime_error("bad copy_block");
    for (int32_t i = 0; i < n; ++i) at(to, i) = at(from, i);
    ++block_copies_;
  }

  void pause(bool p) {
    {
      std::lock_guard lock(mutex_);
      paused_ = p;
    }
    gate_.notify_all();
  }
  void fail_next() {
    std::lock_guard lock(mutex_);
    fail_next_ = true;
  }
  int max_items() const { std::lock_guard l(mutex_); return max_items_; }
  int max_step_tokens_prefill() const { std::lock_guard l(mutex_); return max_prefill_tokens_; }
  bool saw_mixed_step() const { std::lock_guard l(mutex_); return mixed_; }
  int total_prefill_tokens() const { std::lock_guard l(mutex_); return total_prefill_tokens_; }
  int block_copies() const { std::lock_guard l(mutex_); return block_copies_; }
  int64_t steps() const { std::lock_guard l(mutex_); return steps_; }
  std::string misuse() const { std::lock_guard l(mutex_); return misuse_; }

 private:
  int32_t& at(int32_t block, int32_t off) {
    return store_[static_cast<size_t>(block) * static_cast<size_t>(block_size_) + static_cast<size_t>(off)];
  }
  // Writes the item's tokens through its table; returns the history [0, end) read back.
  std::vector<int32_t> write(const forward_item& it) {
    const int32_t end = it.start_pos + static_cast<int32_t>(it.tokens.size());
    if (end > ctx_) {
      misuse_ = "past max_ctx";
      throw std::runtime_error("past max_ctx");
    }
    if (it.blocks.size() * static_cast<size_t>(block_size_) < static_cast<size_t>(end)) {
      misuse_ = "block table too short";
      throw std::runtime_error("block table too short");
    }
    for (int32_t b : it.blocks)
      if (b < 0 || b >= n_blocks_) throw std::runtime_error("bad block");
    std::vector<int32_t> h;
    for (int32_t p = 0; p < end; ++p) {
      int32_t& cell = at(it.blocks[static_cast<size_t>(p / block_size_)], p % block_size_);
      if (p >= it.start_pos) cell = it.tokens[static_cast<size_t>(p - it.start_pos)];
      // The scheduler must continue exactly where the sequence's KV left off.
      else if (cell < 0) misuse_ = "gap in a sequence's positions";
      h.push_back(cell);
    }
    return h;
  }
  void record(std::span<const forward_item> items) {
    max_items_ = std::max(max_items_, static_cast<int>(items.size()));
    int prefill = 0;
    bool decode = false, pre = false;
    std::vector<int32_t> written;
    for (const auto& it : items) {
      const int32_t end = it.start_pos + static_cast<int32_t>(it.tokens.size());
      for (int32_t b = it.start_pos / block_size_; b < (end + block_size_ - 1) / block_size_; ++b) {
        if (static_cast<size_t>(b) >= it.blocks.size()) break;
        const int32_t id = it.blocks[static_cast<size_t>(b)];
        if (std::find(written.begin(), written.end(), id) != written.end()) misuse_ = "two items write one block";
        written.push_back(id);
      }
      if (it.tokens.size() == 1 && it.start_pos > 0) decode = true;
      else {
        pre = true;
        prefill += static_cast<int>(it.tokens.size());
      }
    }
    max_prefill_tokens_ = std::max(max_prefill_tokens_, prefill);
    total_prefill_tokens_ += prefill;
    if (decode && pre) mixed_ = true;
  }

  model_config cfg_;
  int32_t ctx_, block_size_, n_blocks_;
  mutable std::mutex mutex_;
  std::condition_variable gate_, changed_;
  bool paused_ = false, fail_next_ = false, mixed_ = false;
  int max_items_ = 0, max_prefill_tokens_ = 0, total_prefill_tokens_ = 0, block_copies_ = 0;
  int64_t steps_ = 0;
  std::string misuse_;
  std::vector<int32_t> store_;  // [n_blocks][block_size] token ids; -1 = never written
};

// Records every event; wait() blocks until the terminal event (or a timeout).
class recording_sink : public request_sink {
 public:
  struct choice {
    std::string text;
    std::vector<int32_t> tokens;
    size_t logprob_entries = 0;
    finish_reason reason = finish_reason::none;
    int finishes = 0;
  };

  void on_delta(uint32_t index, std::string_view text, std::span<const int32_t> tokens,
                std::span<const logprob_entry> logprobs) override {
    std::lock_guard lock(mutex_);
    check_open();
    auto& c = choices[index];
    c.text += text;
    c.tokens.insert(c.tokens.end(), tokens.begin(), tokens.end());
    c.logprob_entries += logprobs.size();
    ++deltas;
  }
  void on_finish(uint32_t index, finish_reason reason) override {
    std::lock_guard lock(mutex_);
    check_open();
    choices[index].reason = reason;
    ++choices[index].finishes;
  }
  void on_embedding(uint32_t index, std::span<const float> e) override {
    std::lock_guard lock(mutex_);
    check_open();
    embeddings[index].assign(e.begin(), e.end());
  }
  void on_done(const usage_counts& u) override {
    std::lock_guard lock(mutex_);
    check_open();
    usage = u;
    status = engine_status::ok;
    ++terminals;
    cv_.notify_all();
  }
  void on_error(engine_status code, std::string_view message) override {
    std::lock_guard lock(mutex_);
    check_open();
    status = code;
    error = message;
    ++terminals;
    cv_.notify_all();
  }

  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return terminals > 0; });
  }

  std::map<uint32_t, choice> choices;
  std::map<uint32_t, std::vector<float>> embeddings;
  usage_counts usage;
  engine_status status = engine_status::ok;
  std::string error;
  int terminals = 0;
  int deltas = 0;
  bool event_after_terminal = false;

 private:
  void check_open() {
    if (terminals > 0) event_after_terminal = true;
  }
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace moat::engine::testing
