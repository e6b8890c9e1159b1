// The scheduler over the CPU runner's paged KV cache with a fixture model, greedy: two requests
// with a shared prompt prefix allocate fewer blocks than the two alone and give the same tokens
// as each alone; different salts share nothing; a pool too small for the batch preempts and
// still gives every request its tokens alone.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

#include "engine/scheduler.h"
#include "paged_support.h"

namespace moat::cpu::testing {
namespace {

using namespace std::chrono_literals;

// No end-of-generation token (every answer runs max_tokens) and no text: tokens only.
class ids_codec : public engine::text_codec {
 public:
  class decoder : public engine::stream_decoder {
   public:
    std::string push(int32_t) override { return {}; }
    std::string finish() override { return {}; }
  };
  bool is_end_of_generation(int32_t) const override { return false; }
  std::unique_ptr<engine::stream_decoder> make_decoder(bool) const override { return std::make_unique<decoder>(); }
};

class token_sink : public engine::request_sink {
 public:
  void on_delta(uint32_t index, std::string_view, std::span<const int32_t> tokens,
                std::span<const engine::logprob_entry>) override {
    std::lock_guard lock(mutex_);
    auto& t = tokens_[index];
    t.insert(t.end(), tokens.begin(), tokens.end());
  }
  void on_finish(uint32_t, engine::finish_reason) override {}
  void on_embedding(uint32_t, std::span<const float>) override {}
  void on_done(const engine::usage_counts&) override { end(engine::engine_status::ok); }
  void on_error(engine::engine_status code, std::string_view) override { end(code); }

  // The tokens of choice `index` once the request ended ok; empty on error or timeout.
  std::vector<int32_t> wait(uint32_t index = 0) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, 60s, [&] { return done_; }) || status_ != engine::engine_status::ok) return {};
    return tokens_[index];
  }

 private:
  void end(engine::engine_status s) {
    std::lock_guard lock(mutex_);
    status_ = s;
    done_ = true;
    cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<uint32_t, std::vector<int32_t>> tokens_;
  bool done_ = false;
  engine::engine_status status_ = engine::engine_status::internal;
};

engine::generate_request greedy(uint64_t id, std::vector<int32_t> prompt, int max_tokens,
                                std::shared_ptr<token_sink> sink, std::string salt = "") {
  engine::generate_request r;
  r.id = id;
  r.prompts = {std::move(prompt)};
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  r.cache_salt = std::move(salt);
  r.sink = std::move(sink);
  return r;
}

class paged_serving : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_fixture(fixture_models()[1]);  // tinystories-656K-hf
    if (!model_) GTEST_SKIP() << "fixture tinystories-656K-hf is absent from ../shared/fixtures";
  }
  std::unique_ptr<engine::model_runner> runner(int32_t max_slots = 0) {
    return make_cpu_runner(model_, {.threads = 2, .kv_cache_mb = 32, .max_ctx = 128, .max_slots = max_slots});
  }
  struct outcome {
    std::vector<std::vector<int32_t>> tokens;
    engine::scheduler_stats stats;
  };
  // Runs the requests one after another on one scheduler (each waits for the previous).
  outcome run(const std::vector<std::pair<std::vector<int32_t>, std::string>>& prompts, int max_tokens) {
    auto r = runner();
    ids_codec codec;
    engine::scheduler sched(*r, codec, {});
    outcome out;
    uint64_t id = 1;
    for (const auto& [p, salt] : prompts) {
      auto sink = std::make_shared<token_sink>();
      EXPECT_EQ(sched.submit(greedy(id++, p, max_tokens, sink, salt)).code, engine::engine_status::ok);
      out.tokens.push_back(sink->wait());
    }
    out.stats = sched.stats();
    return out;
  }
  std::shared_ptr<const engine::loaded_model> model_;
};

TEST_F(paged_serving, a_shared_prefix_uses_fewer_blocks_and_gives_the_same_tokens) {
  const int32_t vocab = model_->config.vocab_size;
  const auto a = prompt_ids(50, vocab, 1);
  auto b = a;
  b.resize(40);
  for (int32_t t : prompt_ids(12, vocab, 2)) b.push_back(t);
  const auto alone_a = run({{a, ""}}, 20), alone_b = run({{b, ""}}, 20);
  const auto both = run({{a, ""}, {b, ""}}, 20);
  ASSERT_EQ(both.tokens.size(), 2u);
  ASSERT_EQ(alone_a.tokens[0].size(), 20u);
  EXPECT_EQ(both.tokens[0], alone_a.tokens[0]);
  EXPECT_EQ(both.tokens[1], alone_b.tokens[0]);
  EXPECT_LT(both.stats.kv_blocks_allocated, alone_a.stats.kv_blocks_allocated + alone_b.stats.kv_blocks_allocated);
  EXPECT_EQ(both.stats.kv_blocks_allocated + 2, alone_a.stats.kv_blocks_allocated + alone_b.stats.kv_blocks_allocated);
  EXPECT_EQ(both.stats.prefix_cache_hits, 32u);  // b's first two blocks (40 shared tokens)
}

TEST_F(paged_serving, different_salts_share_nothing) {
  const auto p = prompt_ids(50, model_->config.vocab_size, 4);
  const auto alone = run({{p, "team-a"}}, 10);
  const auto apart = run({{p, "team-a"}, {p, "team-b"}}, 10);
  EXPECT_EQ(apart.stats.kv_blocks_allocated, 2 * alone.stats.kv_blocks_allocated);
  EXPECT_EQ(apart.stats.prefix_cache_hits, 0u);
  EXPECT_EQ(apart.tokens[0], alone.tokens[0]);
  EXPECT_EQ(apart.tokens[1], alone.tokens[0]);
  const auto same = run({{p, "team-a"}, {p, "team-a"}}, 10);
  EXPECT_LT(same.stats.kv_blocks_allocated, 2 * alone.stats.kv_blocks_allocated);
  EXPECT_EQ(same.tokens[1], alone.tokens[0]);
}

TEST_F(paged_serving, n_choices_share_the_prompt_and_match_a_single_choice) {
  const auto p = prompt_ids(37, model_->config.vocab_size, 5);
  const auto alone = run({{p, ""}}, 12);
  auto r = runner();
  ids_codec codec;
  engine::scheduler sched(*r, codec, {});
  auto sink = std::make_shared<token_sink>();
  auto req = greedy(1, p, 12, sink);
  req.sampling.n = 3;
  ASSERT_EQ(sched.submit(std::move(req)).code, engine::engine_status::ok);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(sink->wait(i), alone.tokens[0]) << "choice " << i;
  // One choice alone fills 37 + 11 = 48 positions, 3 blocks. The extra choices share the two full
  // prompt blocks and each gets one copy of the partial third: 3 + 2 blocks, not 3 * 3.
  EXPECT_EQ(alone.stats.kv_blocks_allocated, 3u);
  EXPECT_EQ(sched.stats().kv_blocks_allocated, 3u + 2u);
}

TEST_F(paged_serving, preemption_under_a_tiny_pool_gives_the_same_greedy_tokens) {
  const int32_t vocab = model_->config.vocab_size;
  std::vector<std::vector<int32_t>> want;
  for (int i = 0; i < 3; ++i) want.push_back(run({{prompt_ids(20, vocab, 10 + i), ""}}, 90).tokens[0]);
  for (bool caching : {true, false}) {
    auto r = runner(/*max_slots=*/1);  // 8 blocks of 16: one sequence of 128 positions
    ASSERT_EQ(r->n_blocks(), 8);
    ids_codec codec;
    engine::scheduler sched(*r, codec, {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256, .prefix_caching = caching});
    std::vector<std::shared_ptr<token_sink>> sinks;
    for (int i = 0; i < 3; ++i) {
      sinks.push_back(std::make_shared<token_sink>());
      ASSERT_EQ(sched.submit(greedy(i + 1, prompt_ids(20, vocab, 10 + i), 90, sinks.back())).code,
                engine::engine_status::ok);
    }
    for (int i = 0; i < 3; ++i) EXPECT_EQ(sinks[i]->wait(), want[i]) << "request " << i << " caching " << caching;
    EXPECT_GT(sched.stats().preemptions, 0u) << "caching " << caching;
  }
}

}  // namespace
}  // namespace moat::cpu::testing
