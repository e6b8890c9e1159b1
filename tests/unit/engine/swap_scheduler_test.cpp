// Swap preemption in the scheduler (scheduler.h, step 3) against a fake runner with a host KV
// store: the fake of engine_runtime/fakes.h holds the device blocks, the host blocks and one
// never-written "poison" block in one pool, so swap_out/swap_in are copy_block calls and a block
// swapped out is poisoned (a sequence that continued from it without swapping back in, or from a
// host block already given back, reads a gap and the fake reports misuse). A shadow of what each
// block holds tells which request a swap moves, so the order of swaps can be checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/scheduler.h"
#include "fakes.h"

namespace moat::engine {
namespace {

using testing::fake_codec;
using testing::fake_runner;
using testing::recording_sink;
using namespace std::chrono_literals;

constexpr int32_t k_bs = 16, k_ctx = 64;  // 4 blocks per sequence

class swap_runner : public model_runner {
 public:
  // `device` blocks in the pool the scheduler sees, `host` in the host store.
  swap_runner(int32_t device, int32_t host)
      : inner_((device + host + 1 + k_ctx / k_bs - 1) / (k_ctx / k_bs), k_ctx),
        device_(device),
        host_(host),
        poison_(inner_.n_blocks() - 1) {}

  const model_config& config() const override { return inner_.config(); }
  int32_t max_ctx() const override { return k_ctx; }
  int32_t n_blocks() const override { return device_; }
  int32_t block_size() const override { return k_bs; }
  size_t kv_bytes_per_token() const override { return 64; }
  int32_t host_blocks() const override { return host_; }

  void forward(std::span<const forward_item> items, std::span<float> logits) override {
    {
      std::lock_guard lock(mutex_);
      for (const auto& it : items) {
        for (int32_t b : it.blocks)
          if (b < 0 || b >= device_)
            misuse_ = "a block table names a block outside the device pool";
        // A new request's first prefill chunk while a sequence waits in the host store: it was
        // admitted before a swapped one came back.
        if (it.start_pos == 0 && seen_.insert(it.tokens[0]).second && !in_host_.empty())
          misuse_ = "admitted a new request before swapping a sequence back in";
        const int32_t first = it.blocks[0];
        for (size_t t = 0; t < it.tokens.size(); ++t)
          if (it.start_pos + static_cast<int32_t>(t) == 0) owner_[first] = it.tokens[t];
      }
    }
    inner_.forward(items, logits);
    std::unique_lock lock(mutex_);
    // Armed by swap_out (one shot). The test may resume before this step gets here: then there
    // is nothing to wait for, and nothing stays armed for a later swap (that hung the test).
    if (paused_by_swap_) gate_.wait(lock, [&] { return !paused_by_swap_; });
  }
  void hidden_states(std::span<const forward_item> items, std::span<float> hidden) override {
    inner_.hidden_states(items, hidden);
  }
  void copy_block(int32_t from, int32_t to, int32_t n) override { inner_.copy_block(from, to, n); }

  void swap_out(std::span<const block_move> moves) override {
    check_moves(moves, true, "swap_out");
    std::lock_guard lock(mutex_);
    if (fail_out_) {
      fail_out_ = false;
      throw model_error("swap_out: injected failure");
    }
    const int32_t who = owner_[moves[0].device];
    for (const auto& m : moves) {
      inner_.copy_block(m.device, device_ + m.host, k_bs);
      inner_.copy_block(poison_, m.device, k_bs);  // the device block is free now
      in_host_.insert(m.host);
    }
    host_owner_[moves[0].host] = who;
    swapped_.insert(who);
    outs_.push_back(who);
    if (pause_after_swap_) {
      pause_after_swap_ = false;
      paused_by_swap_ = true;
    }
  }
  void swap_in(std::span<const block_move> moves) override {
    check_moves(moves, false, "swap_in");
    std::lock_guard lock(mutex_);
    const int32_t who = host_owner_[moves[0].host];
    if (fail_in_) {
      fail_in_ = false;
      swapped_.erase(who);
      for (const auto& m : moves) in_host_.erase(m.host);
      throw model_error("swap_in: injected failure");
    }
    // Oldest first: the request swapped back in is the earliest submitted one still out.
    if (!swapped_.empty() && who != *swapped_.begin())
      misuse_ = "a younger sequence was swapped in first";
    for (const auto& m : moves) {
      inner_.copy_block(device_ + m.host, m.device, k_bs);
      inner_.copy_block(poison_, device_ + m.host, k_bs);
      in_host_.erase(m.host);
    }
    owner_[moves[0].device] = who;
    swapped_.erase(who);
    ins_.push_back(who);
  }

  void pause(bool p) { inner_.pause(p); }
  void pause_after_next_swap_out() {
    std::lock_guard lock(mutex_);
    pause_after_swap_ = true;
  }
  void resume_after_swap() {
    {
      std::lock_guard lock(mutex_);
      paused_by_swap_ = false;
    }
    gate_.notify_all();
  }
  void fail_next_swap_out() {
    std::lock_guard l(mutex_);
    fail_out_ = true;
  }
  void fail_next_swap_in() {
    std::lock_guard l(mutex_);
    fail_in_ = true;
  }
  int total_prefill_tokens() const { return inner_.total_prefill_tokens(); }
  std::string misuse() const {
    std::lock_guard l(mutex_);
    return misuse_.empty() ? inner_.misuse() : misuse_;
  }
  std::vector<int32_t> swap_outs() const {
    std::lock_guard l(mutex_);
    return outs_;
  }
  std::vector<int32_t> swap_ins() const {
    std::lock_guard l(mutex_);
    return ins_;
  }

 private:
  fake_runner inner_;  // [device blocks][host blocks][poison]...
  int32_t device_, host_, poison_;
  mutable std::mutex mutex_;
  std::condition_variable gate_;
  bool pause_after_swap_ = false, paused_by_swap_ = false, fail_out_ = false, fail_in_ = false;
  std::map<int32_t, int32_t> owner_,
      host_owner_;  // first block -> the request's first prompt token
  std::set<int32_t> swapped_, in_host_,
      seen_;  // requests by first prompt token; host blocks in use
  std::vector<int32_t> outs_, ins_;
  std::string misuse_;
};

std::vector<int32_t> expected_greedy(std::vector<int32_t> history, int count) {
  std::vector<int32_t> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(fake_runner::preferred(history, 32));
    history.push_back(out.back());
  }
  return out;
}

// Request i's prompt starts with token i + 1, which names it in the runner's shadow.
std::vector<int32_t> prompt_of(int len, int32_t i) {
  std::vector<int32_t> p{i + 1};
  for (int k = 1; k < len; ++k) p.push_back(1 + (k * 7 + i * 3) % 31);
  return p;
}

generate_request greedy(uint64_t id, std::vector<int32_t> prompt, int max_tokens,
                        std::shared_ptr<recording_sink> sink) {
  generate_request r;
  r.id = id;
  r.prompts = {std::move(prompt)};
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  r.sink = std::move(sink);
  return r;
}

void wait_until(const std::function<bool()>& cond) {
  for (int i = 0; i < 4000 && !cond(); ++i) std::this_thread::sleep_for(1ms);
}

// Submits `count` requests of a 10-token prompt and 50 answer tokens while the runner is paused
// (so they are all admitted, one block each, and then outgrow the pool together).
std::vector<std::shared_ptr<recording_sink>> submit_together(scheduler& sched, swap_runner& runner,
                                                             int count) {
  std::vector<std::shared_ptr<recording_sink>> sinks;
  runner.pause(true);
  for (int i = 0; i < count; ++i) {
    sinks.push_back(std::make_shared<recording_sink>());
    EXPECT_EQ(
        sched.submit(greedy(static_cast<uint64_t>(i + 1), prompt_of(10, i), 50, sinks.back())).code,
        engine_status::ok);
  }
  runner.pause(false);
  return sinks;
}

void expect_all_greedy(const std::vector<std::shared_ptr<recording_sink>>& sinks) {
  for (size_t i = 0; i < sinks.size(); ++i) {
    ASSERT_TRUE(sinks[i]->wait()) << "request " << i;
    EXPECT_EQ(sinks[i]->status, engine_status::ok);
    EXPECT_EQ(sinks[i]->choices[0].tokens,
              expected_greedy(prompt_of(10, static_cast<int32_t>(i)), 50))
        << "request " << i;
    EXPECT_FALSE(sinks[i]->event_after_terminal);
  }
}

void expect_host_store_empty(scheduler& sched) {
  wait_until([&] { return sched.stats().running == 0 && sched.stats().host_blocks_used == 0; });
  const auto s = sched.stats();
  EXPECT_EQ(s.running, 0u);
  EXPECT_EQ(s.swapped, 0u);
  EXPECT_EQ(s.host_blocks_used, 0u);
  EXPECT_EQ(s.kv_blocks_used, 0u);
}

TEST(swap_scheduler, swapping_gives_the_unconstrained_tokens_and_recomputes_nothing) {
  for (bool caching : {true, false}) {
    swap_runner runner(4, 8);  // the device holds one whole sequence, the host two
    fake_codec codec;
    scheduler sched(
        runner, codec,
        {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256, .prefix_caching = caching});
    EXPECT_EQ(sched.stats().host_blocks_total, 8u);
    auto sinks = submit_together(sched, runner, 3);
    expect_all_greedy(sinks);
    const auto s = sched.stats();
    EXPECT_GT(s.swap_outs, 0u) << caching;
    EXPECT_EQ(s.swap_ins, s.swap_outs);
    EXPECT_EQ(s.preemptions, s.swap_outs);
    EXPECT_EQ(s.preemptions_recompute, 0u);
    EXPECT_EQ(s.blocks_swapped_in, s.blocks_swapped_out);
    EXPECT_GE(s.blocks_swapped_out, s.swap_outs);
    EXPECT_EQ(runner.total_prefill_tokens(), 30);  // each prompt once: no context recomputed
    EXPECT_EQ(runner.swap_ins().size(), runner.swap_outs().size());
    EXPECT_EQ(runner.misuse(), "");
    expect_host_store_empty(sched);
  }
}

TEST(swap_scheduler, swapped_sequences_return_oldest_first_and_before_new_requests) {
  swap_runner runner(4, 12);
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 8, .max_queue = 8, .prefill_chunk = 256});
  runner.pause_after_next_swap_out();
  auto sinks = submit_together(sched, runner, 4);
  // Two more arrive while a sequence is out in the host store: they wait for it.
  wait_until([&] { return sched.stats().swapped > 0; });
  EXPECT_GT(sched.stats().swapped, 0u);
  for (int i = 4; i < 6; ++i) {
    sinks.push_back(std::make_shared<recording_sink>());
    ASSERT_EQ(
        sched.submit(greedy(static_cast<uint64_t>(i + 1), prompt_of(10, i), 50, sinks.back())).code,
        engine_status::ok);
  }
  runner.resume_after_swap();
  expect_all_greedy(sinks);
  EXPECT_GE(runner.swap_outs().size(), 2u);
  EXPECT_EQ(sched.stats().preemptions_recompute, 0u);
  EXPECT_EQ(runner.misuse(), "");  // order checked at every swap_in and admission
  expect_host_store_empty(sched);
}

TEST(swap_scheduler, a_full_host_store_falls_back_to_recompute) {
  swap_runner runner(4, 2);  // the second sequence swapped out (2 blocks) finds 1 free
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256});
  auto sinks = submit_together(sched, runner, 3);
  expect_all_greedy(sinks);
  const auto s = sched.stats();
  EXPECT_GT(s.swap_outs, 0u);
  EXPECT_GT(s.preemptions_recompute, 0u);
  EXPECT_EQ(s.preemptions, s.swap_outs + s.preemptions_recompute);
  EXPECT_GT(runner.total_prefill_tokens(), 30);  // the recomputed contexts
  EXPECT_EQ(runner.misuse(), "");
  expect_host_store_empty(sched);
}

TEST(swap_scheduler, without_a_host_store_or_with_swap_off_preemption_recomputes) {
  for (bool swap : {true, false}) {
    swap_runner runner(4, swap ? 0 : 8);
    fake_codec codec;
    scheduler sched(runner, codec,
                    {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256, .swap = swap});
    EXPECT_EQ(sched.stats().host_blocks_total, 0u);
    auto sinks = submit_together(sched, runner, 3);
    expect_all_greedy(sinks);
    EXPECT_GT(sched.stats().preemptions, 0u);
    EXPECT_EQ(sched.stats().swap_outs, 0u);
    EXPECT_EQ(sched.stats().preemptions_recompute, sched.stats().preemptions);
    EXPECT_TRUE(runner.swap_outs().empty());
    EXPECT_EQ(runner.misuse(), "");
  }
}

TEST(swap_scheduler, cancelling_a_swapped_sequence_returns_its_host_blocks) {
  swap_runner runner(4, 8);
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256});
  runner.pause_after_next_swap_out();  // the engine stops with the sequence in the host store
  auto sinks = submit_together(sched, runner, 2);
  wait_until([&] { return sched.stats().swapped == 1; });
  ASSERT_EQ(sched.stats().swapped, 1u);
  EXPECT_GT(sched.stats().host_blocks_used, 0u);
  ASSERT_EQ(runner.swap_outs().size(), 1u);
  const uint64_t victim = static_cast<uint64_t>(runner.swap_outs()[0]);  // first prompt token = id
  sched.cancel(victim);
  runner.resume_after_swap();
  ASSERT_TRUE(sinks[victim - 1]->wait());
  EXPECT_EQ(sinks[victim - 1]->status, engine_status::cancelled);
  const auto& other = sinks[2 - victim];
  ASSERT_TRUE(other->wait());
  EXPECT_EQ(other->choices[0].tokens,
            expected_greedy(prompt_of(10, static_cast<int32_t>(2 - victim)), 50));
  EXPECT_TRUE(runner.swap_ins().empty());  // the cancelled one never came back
  EXPECT_EQ(runner.misuse(), "");
  expect_host_store_empty(sched);
}

TEST(swap_scheduler, a_failed_swap_recomputes_and_the_tokens_stay_right) {
  for (bool fail_in : {false, true}) {
    swap_runner runner(4, 8);
    fake_codec codec;
    scheduler sched(runner, codec, {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256});
    if (fail_in)
      runner.fail_next_swap_in();
    else
      runner.fail_next_swap_out();
    auto sinks = submit_together(sched, runner, 3);
    expect_all_greedy(sinks);
    EXPECT_GT(sched.stats().preemptions_recompute, 0u) << fail_in;
    EXPECT_EQ(runner.misuse(), "");
    expect_host_store_empty(sched);
  }
}

}  // namespace
}  // namespace moat::engine
