// Swap preemption end to end on the CPU (issue 9): the CPU runner's host KV store
// (cpu_options::host_kv_mb, model_runner::swap_out/swap_in) with a fixture model, greedy.
//  - the hooks themselves: a sequence swapped out, its device blocks overwritten by another
//    prompt, and swapped back into different blocks continues with the logits it had;
//  - the scheduler: a pool of one sequence serving three, preempting by swapping, gives each
//    request the tokens it gets alone on an unconstrained pool, recomputes nothing, and gives
//    the host blocks back (f32 and int8 K/V).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "engine/scheduler.h"
#include "paged_support.h"

namespace moat::cpu::testing {
namespace {

using namespace std::chrono_literals;

class ids_codec : public engine::text_codec {  // no EOS: every answer runs max_tokens
 public:
  class decoder : public engine::stream_decoder {
   public:
    std::string push(int32_t) override { return {}; }
    std::string finish() override { return {}; }
  };
  bool is_end_of_generation(int32_t) const override { return false; }
  std::unique_ptr<engine::stream_decoder> make_decoder(bool) const override {
    return std::make_unique<decoder>();
  }
};

class token_sink : public engine::request_sink {
 public:
  void on_delta(uint32_t, std::string_view, std::span<const int32_t> tokens,
                std::span<const engine::logprob_entry>) override {
    std::lock_guard lock(mutex_);
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  }
  void on_finish(uint32_t, engine::finish_reason) override {}
  void on_embedding(uint32_t, std::span<const float>) override {}
  void on_done(const engine::usage_counts&) override { end(true); }
  void on_error(engine::engine_status, std::string_view) override { end(false); }
  // The answer once the request ended ok; empty on error or timeout.
  std::vector<int32_t> wait() {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, 120s, [&] { return done_; }) || !ok_) return {};
    return tokens_;
  }

 private:
  void end(bool ok) {
    std::lock_guard lock(mutex_);
    ok_ = ok;
    done_ = true;
    cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<int32_t> tokens_;
  bool done_ = false, ok_ = false;
};

class swap_serving : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_fixture(fixture_models()[1]);  // tinystories-656K-hf
    if (!model_) GTEST_SKIP() << "fixture tinystories-656K-hf is absent from ../shared/fixtures";
  }
  // Context 128 in blocks of 16; max_slots = 1 makes an 8-block pool.
  std::unique_ptr<engine::model_runner> runner(int32_t max_slots, size_t host_kv_mb,
                                               const std::string& kv_dtype = "") {
    return make_cpu_runner(model_, {.threads = 2,
                                    .kv_cache_mb = 32,
                                    .max_ctx = 128,
                                    .max_slots = max_slots,
                                    .kv_dtype = kv_dtype,
                                    .host_kv_mb = host_kv_mb});
  }
  // MiB that hold at least `blocks` host blocks of this model.
  size_t mb_for_blocks(int32_t blocks, const std::string& kv_dtype = "") {
    const size_t per_block = runner(1, 0, kv_dtype)->kv_bytes_per_token() * 16;
    return (static_cast<size_t>(blocks) * per_block + (size_t{1} << 20) - 1) >> 20;
  }
  std::vector<int32_t> alone(const std::vector<int32_t>& prompt, int max_tokens,
                             const std::string& kv_dtype) {
    auto r = runner(0, 0, kv_dtype);
    ids_codec codec;
    engine::scheduler sched(*r, codec, {});
    auto sink = std::make_shared<token_sink>();
    EXPECT_EQ(sched.submit(request(1, prompt, max_tokens, sink)).code, engine::engine_status::ok);
    return sink->wait();
  }
  static engine::generate_request request(uint64_t id, std::vector<int32_t> prompt, int max_tokens,
                                          std::shared_ptr<token_sink> sink) {
    engine::generate_request r;
    r.id = id;
    r.prompts = {std::move(prompt)};
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = max_tokens;
    r.sink = std::move(sink);
    return r;
  }
  std::shared_ptr<const engine::loaded_model> model_;
};

TEST_F(swap_serving, the_runner_swaps_blocks_out_and_back_into_other_blocks) {
  const int32_t vocab = model_->config.vocab_size;
  const size_t v = static_cast<size_t>(vocab);
  const auto prompt = prompt_ids(30, vocab, 3);
  auto plain = runner(0, 0);
  EXPECT_EQ(plain->host_blocks(), 0);
  EXPECT_FALSE(plain->can_swap());
  const std::vector<int32_t> first = {0, 1, 2};
  const auto want =
      run_chunks(*plain, first, prompt, {}, 1);  // rows 0..29 prompt, row 30 one decode step

  auto r = runner(0, mb_for_blocks(4));
  ASSERT_GE(r->host_blocks(), 4);
  EXPECT_TRUE(r->can_swap());
  run_chunks(*r, first, prompt, {}, 0);  // positions 0..29 in blocks 0 and 1
  const engine::block_move out[] = {{.device = 0, .host = 3}, {.device = 1, .host = 2}};
  r->swap_out(out);
  run_chunks(*r, first, prompt_ids(40, vocab, 9), {}, 0);  // another prompt overwrites blocks 0..2
  const engine::block_move in[] = {{.device = 6, .host = 3}, {.device = 4, .host = 2}};
  r->swap_in(in);
  const std::vector<int32_t> moved = {6, 4, 5};
  const int32_t next = argmax(want.data() + 29 * v, v);
  engine::forward_item step{.tokens = {&next, 1}, .start_pos = 30, .blocks = moved};
  std::vector<float> logits(v);
  r->forward({&step, 1}, logits);
  float worst = 0.0f;
  for (size_t i = 0; i < v; ++i) worst = std::max(worst, std::abs(logits[i] - want[30 * v + i]));
  EXPECT_LT(worst, 1e-4f);  // the same K/V, read through another table
  EXPECT_EQ(argmax(logits.data(), v), argmax(want.data() + 30 * v, v));

  // Bad moves are refused before anything is copied.
  const engine::block_move bad_host[] = {{.device = 0, .host = r->host_blocks()}};
  EXPECT_THROW(r->swap_out(bad_host), engine::model_error);
  const engine::block_move bad_device[] = {{.device = r->n_blocks(), .host = 0}};
  EXPECT_THROW(r->swap_in(bad_device), engine::model_error);
  const engine::block_move twice[] = {{.device = 0, .host = 1}, {.device = 2, .host = 1}};
  EXPECT_THROW(r->swap_out(twice), engine::model_error);
  EXPECT_THROW(plain->swap_out(out), engine::model_error);  // no host store
}

TEST_F(swap_serving, a_tiny_pool_swaps_and_gives_every_request_its_tokens_alone) {
  const int32_t vocab = model_->config.vocab_size;
  for (const std::string kv_dtype : {"", "int8"}) {
    std::vector<std::vector<int32_t>> want;
    for (int i = 0; i < 3; ++i) want.push_back(alone(prompt_ids(20, vocab, 10 + i), 90, kv_dtype));
    // Each request ends at 110 positions (7 blocks); two may be out at once.
    auto r = runner(/*max_slots=*/1, mb_for_blocks(14, kv_dtype), kv_dtype);
    ASSERT_EQ(r->n_blocks(), 8);
    ASSERT_GE(r->host_blocks(), 14);
    ids_codec codec;
    engine::scheduler sched(*r, codec, {.max_batch = 4, .max_queue = 8, .prefill_chunk = 256});
    std::vector<std::shared_ptr<token_sink>> sinks;
    for (int i = 0; i < 3; ++i) {
      sinks.push_back(std::make_shared<token_sink>());
      ASSERT_EQ(sched.submit(request(i + 1, prompt_ids(20, vocab, 10 + i), 90, sinks.back())).code,
                engine::engine_status::ok);
    }
    for (int i = 0; i < 3; ++i) {
      const auto got = sinks[i]->wait();
      ASSERT_EQ(got.size(), 90u) << "request " << i << " kv " << kv_dtype;
      EXPECT_EQ(got, want[i]) << "request " << i << " kv " << kv_dtype;
    }
    for (int i = 0; i < 2000 && sched.stats().running > 0; ++i) std::this_thread::sleep_for(1ms);
    const auto s = sched.stats();
    EXPECT_GT(s.swap_outs, 0u) << kv_dtype;
    EXPECT_EQ(s.swap_ins, s.swap_outs);
    EXPECT_EQ(s.preemptions, s.swap_outs);
    EXPECT_EQ(s.preemptions_recompute, 0u);
    EXPECT_GT(s.blocks_swapped_out, 0u);
    EXPECT_EQ(s.blocks_swapped_in, s.blocks_swapped_out);
    EXPECT_EQ(s.swapped, 0u);
    EXPECT_EQ(s.host_blocks_used, 0u);
    EXPECT_EQ(s.host_blocks_total, static_cast<uint32_t>(r->host_blocks()));
    EXPECT_EQ(s.kv_blocks_used, 0u);
  }
}

}  // namespace
}  // namespace moat::cpu::testing
