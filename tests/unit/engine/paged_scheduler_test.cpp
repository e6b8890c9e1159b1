// The scheduler over a paged KV pool, against the fake runner of engine_runtime/fakes.h (its
// logits depend on the whole history read back through each item's block table, so a wrongly
// shared, stale or missing block changes the tokens): admission by free blocks, prefix caching
// and its salt, n > 1 choices sharing a prompt's blocks, recompute preemption, usage stats.
#include <gtest/gtest.h>

#include <thread>

#include "engine/scheduler.h"
#include "fakes.h"

namespace moat::engine {
namespace {

using testing::fake_codec;
using testing::fake_runner;
using testing::recording_sink;
using namespace std::chrono_literals;

std::vector<int32_t> expected_greedy(std::vector<int32_t> history, int count) {
  std::vector<int32_t> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(fake_runner::preferred(history, 32));
    history.push_back(out.back());
  }
  return out;
}

std::vector<int32_t> prompt_of(int len, int32_t salt = 0) {
  std::vector<int32_t> p;
  for (int i = 0; i < len; ++i) p.push_back(1 + (i * 5 + salt) % 31);
  return p;
}

generate_request greedy(uint64_t id, std::vector<int32_t> prompt, int max_tokens, std::shared_ptr<recording_sink> sink,
                        std::string salt = "") {
  generate_request r;
  r.id = id;
  r.prompts = {std::move(prompt)};
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  r.cache_salt = std::move(salt);
  r.sink = std::move(sink);
  return r;
}

void wait_until(const std::function<bool()>& cond) {
  for (int i = 0; i < 4000 && !cond(); ++i) std::this_thread::sleep_for(1ms);
}

// Runs `a`, then (after it finished) `b`, on one scheduler; returns the prefill tokens computed.
struct pair_run {
  std::vector<int32_t> tokens_a, tokens_b;
  int prefill_tokens = 0;
  scheduler_stats stats;
};
pair_run run_pair(const std::vector<int32_t>& pa, const std::string& sa, const std::vector<int32_t>& pb,
                  const std::string& sb, bool caching) {
  fake_runner runner(4, 256);
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256, .prefix_caching = caching});
  auto a = std::make_shared<recording_sink>(), b = std::make_shared<recording_sink>();
  EXPECT_EQ(sched.submit(greedy(1, pa, 5, a, sa)).code, engine_status::ok);
  EXPECT_TRUE(a->wait());
  EXPECT_EQ(sched.submit(greedy(2, pb, 5, b, sb)).code, engine_status::ok);
  EXPECT_TRUE(b->wait());
  EXPECT_EQ(runner.misuse(), "");
  return {a->choices[0].tokens, b->choices[0].tokens, runner.total_prefill_tokens(), sched.stats()};
}

TEST(paged_scheduler, a_cached_prompt_prefix_is_not_computed_again) {
  auto pa = prompt_of(40), pb = prompt_of(40);
  pb.resize(37);  // shares the first two full blocks (32 tokens) with pa
  pb.push_back(30);
  const auto r = run_pair(pa, "", pb, "", true);
  EXPECT_EQ(r.tokens_a, expected_greedy(pa, 5));
  EXPECT_EQ(r.tokens_b, expected_greedy(pb, 5));
  EXPECT_EQ(r.prefill_tokens, 40 + (38 - 32));
  EXPECT_EQ(r.stats.prefix_cache_queries, 40u + 38u);
  EXPECT_EQ(r.stats.prefix_cache_hits, 32u);
}

TEST(paged_scheduler, the_last_prompt_token_is_always_computed) {
  const auto p = prompt_of(32);  // exactly two blocks: only the first may come from the cache
  const auto r = run_pair(p, "", p, "", true);
  EXPECT_EQ(r.tokens_b, expected_greedy(p, 5));
  EXPECT_EQ(r.prefill_tokens, 32 + 16);
  EXPECT_EQ(r.stats.prefix_cache_hits, 16u);
}

TEST(paged_scheduler, different_salts_share_nothing_and_equal_salts_share) {
  const auto p = prompt_of(50);
  const auto apart = run_pair(p, "team-a", p, "team-b", true);
  EXPECT_EQ(apart.prefill_tokens, 100);
  EXPECT_EQ(apart.stats.prefix_cache_hits, 0u);
  EXPECT_EQ(apart.tokens_a, apart.tokens_b);
  const auto together = run_pair(p, "team-a", p, "team-a", true);
  EXPECT_EQ(together.prefill_tokens, 50 + 50 - 48);
  EXPECT_EQ(together.tokens_b, expected_greedy(p, 5));
  const auto unsalted = run_pair(p, "team-a", p, "", true);  // "" is a salt of its own
  EXPECT_EQ(unsalted.prefill_tokens, 100);
}

TEST(paged_scheduler, prefix_caching_off_computes_every_prompt) {
  const auto p = prompt_of(50);
  const auto r = run_pair(p, "", p, "", false);
  EXPECT_EQ(r.prefill_tokens, 100);
  EXPECT_EQ(r.stats.prefix_cache_queries, 0u);
  EXPECT_EQ(r.tokens_b, expected_greedy(p, 5));
}

TEST(paged_scheduler, decode_blocks_are_cached_too) {
  // b's prompt is a's prompt plus a's answer: a's decode blocks serve it.
  const auto pa = prompt_of(20);
  auto pb = pa;
  const auto answer = expected_greedy(pa, 5);
  pb.insert(pb.end(), answer.begin(), answer.end());
  pb.insert(pb.end(), {3, 4, 5, 6, 7, 8, 9, 10});  // 33 tokens: blocks 0 and 1 are a's
  const auto r = run_pair(pa, "", pb, "", true);
  EXPECT_EQ(r.tokens_b, expected_greedy(pb, 5));
  EXPECT_EQ(r.stats.prefix_cache_hits, 16u);  // a held 24 positions: one full block
  EXPECT_EQ(r.prefill_tokens, 20 + 33 - 16);
}

TEST(paged_scheduler, n_choices_share_the_prompt_blocks_and_copy_only_the_partial_one) {
  for (int len : {20, 32}) {
    fake_runner runner(8, 128);
    fake_codec codec;
    scheduler sched(runner, codec, {});
    auto sink = std::make_shared<recording_sink>();
    auto r = greedy(1, prompt_of(len), 6, sink);
    r.sampling.n = 3;
    ASSERT_EQ(sched.submit(std::move(r)).code, engine_status::ok);
    ASSERT_TRUE(sink->wait());
    for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(sink->choices[i].tokens, expected_greedy(prompt_of(len), 6)) << len;
    EXPECT_EQ(runner.total_prefill_tokens(), len);               // the prompt ran once
    EXPECT_EQ(runner.block_copies(), len % 16 == 0 ? 0 : 2);     // one partial block per extra choice
    EXPECT_EQ(runner.misuse(), "");
    // Three choices of 26 or 38 positions: the shared full blocks are counted once.
    const int32_t full = len / 16;
    const int32_t alone = (len + 6 - 1 + 15) / 16;  // blocks one choice ends with
    EXPECT_LT(sched.stats().kv_blocks_peak, static_cast<uint32_t>(3 * alone));
    EXPECT_GE(sched.stats().kv_blocks_peak, static_cast<uint32_t>(full + 3 * (alone - full)));
  }
}

TEST(paged_scheduler, admission_waits_for_blocks_not_slots) {
  fake_runner runner(1, 64);  // 4 blocks of 16 in all
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 8, .max_queue = 8, .prefill_chunk = 256});
  ASSERT_EQ(sched.block_count(), 4);
  auto a = std::make_shared<recording_sink>(), b = std::make_shared<recording_sink>();
  ASSERT_EQ(sched.submit(greedy(1, prompt_of(40, 1), 10, a)).code, engine_status::ok);  // 3 blocks, then 4
  ASSERT_EQ(sched.submit(greedy(2, prompt_of(30, 2), 4, b)).code, engine_status::ok);   // needs 2
  ASSERT_TRUE(a->wait());
  ASSERT_TRUE(b->wait());
  EXPECT_EQ(a->choices[0].tokens, expected_greedy(prompt_of(40, 1), 10));
  EXPECT_EQ(b->choices[0].tokens, expected_greedy(prompt_of(30, 2), 4));
  EXPECT_EQ(runner.max_items(), 1);  // never both at once: the pool cannot hold them
  EXPECT_EQ(sched.stats().preemptions, 0u);
  // Small requests do run together when their blocks fit.
  auto c = std::make_shared<recording_sink>(), d = std::make_shared<recording_sink>();
  runner.pause(true);
  ASSERT_EQ(sched.submit(greedy(3, prompt_of(10, 3), 3, c)).code, engine_status::ok);
  ASSERT_EQ(sched.submit(greedy(4, prompt_of(10, 4), 3, d)).code, engine_status::ok);
  runner.pause(false);
  ASSERT_TRUE(c->wait());
  ASSERT_TRUE(d->wait());
  EXPECT_EQ(runner.max_items(), 2);
  EXPECT_EQ(runner.misuse(), "");
}

TEST(paged_scheduler, preemption_under_a_tiny_pool_gives_the_same_greedy_tokens) {
  for (bool caching : {true, false}) {
    fake_runner runner(1, 64);  // 4 blocks: one whole sequence
    fake_codec codec;
    scheduler sched(runner, codec, {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256, .prefix_caching = caching});
    std::vector<std::shared_ptr<recording_sink>> sinks;
    runner.pause(true);  // all three are admitted together (one block each), then grow
    for (int i = 0; i < 3; ++i) {
      sinks.push_back(std::make_shared<recording_sink>());
      ASSERT_EQ(sched.submit(greedy(i + 1, prompt_of(10, i), 50, sinks.back())).code, engine_status::ok);
    }
    runner.pause(false);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(sinks[i]->wait());
      EXPECT_EQ(sinks[i]->status, engine_status::ok);
      EXPECT_EQ(sinks[i]->choices[0].tokens, expected_greedy(prompt_of(10, i), 50)) << "request " << i << " caching " << caching;
      EXPECT_FALSE(sinks[i]->event_after_terminal);
    }
    EXPECT_GT(sched.stats().preemptions, 0u);
    EXPECT_EQ(runner.misuse(), "");
    wait_until([&] { return sched.stats().running == 0; });
    EXPECT_EQ(sched.stats().running, 0u);
    EXPECT_EQ(sched.stats().kv_blocks_used, 0u);
  }
}

TEST(paged_scheduler, kv_usage_is_referenced_blocks_over_all_blocks) {
  fake_runner runner(2, 64);  // 8 blocks
  fake_codec codec;
  scheduler sched(runner, codec, {});
  EXPECT_EQ(sched.stats().kv_blocks_total, 8u);
  EXPECT_EQ(sched.stats().kv_usage, 0.0);
  auto a = std::make_shared<recording_sink>();
  runner.pause(true);
  ASSERT_EQ(sched.submit(greedy(1, prompt_of(40), 3, a)).code, engine_status::ok);
  wait_until([&] { return sched.stats().running == 1; });
  EXPECT_EQ(sched.stats().kv_blocks_used, 3u);
  EXPECT_DOUBLE_EQ(sched.stats().kv_usage, 3.0 / 8.0);
  runner.pause(false);
  ASSERT_TRUE(a->wait());
  wait_until([&] { return sched.stats().kv_blocks_used == 0; });
  EXPECT_EQ(sched.stats().kv_usage, 0.0);  // cached blocks count as free
}

TEST(paged_scheduler, cancel_returns_the_blocks) {
  fake_runner runner(1, 4096);
  fake_codec codec;
  scheduler sched(runner, codec, {});
  auto a = std::make_shared<recording_sink>();
  ASSERT_EQ(sched.submit(greedy(1, prompt_of(100), -1, a)).code, engine_status::ok);
  wait_until([&] { return runner.steps() > 3; });
  EXPECT_GT(sched.stats().kv_blocks_used, 0u);
  sched.cancel(1);
  ASSERT_TRUE(a->wait());
  EXPECT_EQ(a->status, engine_status::cancelled);
  wait_until([&] { return sched.stats().kv_blocks_used == 0; });
  EXPECT_EQ(sched.stats().kv_blocks_used, 0u);
}

}  // namespace
}  // namespace moat::engine
