// The scheduler against a fake model: join/leave, chunked prefill, KV-block admission, the queue
// bound, cancellation, context errors, n choices, embeddings, failures and shutdown.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "engine/scheduler.h"
#include "fakes.h"

namespace moat::engine {
namespace {

using testing::fake_codec;
using testing::fake_runner;
using testing::recording_sink;
using namespace std::chrono_literals;

// What greedy decoding of the fake model yields after `prompt`.
std::vector<int32_t> expected_greedy(std::vector<int32_t> history, int count, int32_t vocab = 32) {
  std::vector<int32_t> out;
  for (int i = 0; i < count; ++i) {
    int32_t t = fake_runner::preferred(history, vocab);
    out.push_back(t);
    history.push_back(t);
  }
  return out;
}

std::string letters(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t t : ids) s += static_cast<char>('a' + (t - 1) % 26);
  return s;
}

std::vector<int32_t> prompt_of(int len, int32_t salt = 0) {
  std::vector<int32_t> p;
  for (int i = 0; i < len; ++i) p.push_back(1 + (i * 5 + salt) % 31);
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
  for (int i = 0; i < 2000 && !cond(); ++i) std::this_thread::sleep_for(1ms);
}

TEST(scheduler, greedy_request_generates_the_models_tokens) {
  fake_runner runner(4, 128);
  fake_codec codec;
  scheduler sched(runner, codec, {});
  auto sink = std::make_shared<recording_sink>();
  auto prompt = prompt_of(10);
  ASSERT_EQ(sched.submit(greedy(1, prompt, 12, sink)).code, engine_status::ok);
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->status, engine_status::ok);
  const auto want = expected_greedy(prompt, 12);
  EXPECT_EQ(sink->choices[0].tokens, want);
  EXPECT_EQ(sink->choices[0].text, letters(want));
  EXPECT_EQ(sink->choices[0].reason, finish_reason::length);
  EXPECT_EQ(sink->choices[0].finishes, 1);
  EXPECT_EQ(sink->usage.prompt_tokens, 10u);
  EXPECT_EQ(sink->usage.completion_tokens, 12u);
  EXPECT_EQ(runner.misuse(), "");
}

TEST(scheduler, chunked_prefill_gives_the_same_tokens_as_one_shot) {
  fake_codec codec;
  auto prompt = prompt_of(100, 3);
  std::vector<int32_t> outputs[2];
  int max_prefill[2];
  const int chunks[2] = {7, 256};
  for (int k = 0; k < 2; ++k) {
    fake_runner runner(2, 256);
    scheduler sched(runner, codec, {.max_batch = 2, .max_queue = 8, .prefill_chunk = chunks[k]});
    auto sink = std::make_shared<recording_sink>();
    ASSERT_EQ(sched.submit(greedy(1, prompt, 20, sink)).code, engine_status::ok);
    ASSERT_TRUE(sink->wait());
    outputs[k] = sink->choices[0].tokens;
    max_prefill[k] = runner.max_step_tokens_prefill();
    EXPECT_EQ(runner.misuse(), "");
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], expected_greedy(prompt, 20));
  EXPECT_LE(max_prefill[0], 7);
  EXPECT_EQ(max_prefill[1], 100);
}

TEST(scheduler, sequences_join_and_leave_and_results_match_running_alone) {
  fake_runner runner(3, 256);
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 3, .max_queue = 64, .prefill_chunk = 16});
  std::vector<std::shared_ptr<recording_sink>> sinks;
  // Held while submitting, so a loaded machine cannot run each request to its end before the
  // next one arrives (then nothing would share a step).
  runner.pause(true);
  for (int i = 0; i < 10; ++i) {
    sinks.push_back(std::make_shared<recording_sink>());
    ASSERT_EQ(sched.submit(greedy(i + 1, prompt_of(5 + i * 7, i), 5 + i * 3, sinks.back())).code,
              engine_status::ok);
  }
  runner.pause(false);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(sinks[i]->wait());
    EXPECT_EQ(sinks[i]->status, engine_status::ok);
    EXPECT_EQ(sinks[i]->choices[0].tokens, expected_greedy(prompt_of(5 + i * 7, i), 5 + i * 3))
        << "request " << i;
    EXPECT_FALSE(sinks[i]->event_after_terminal);
  }
  EXPECT_LE(runner.max_items(), 3);      // never more sequences than slots
  EXPECT_TRUE(runner.saw_mixed_step());  // a prompt chunk ran beside decode steps
  EXPECT_EQ(runner.misuse(), "");
  wait_until([&] { return sched.stats().running == 0; });
  EXPECT_EQ(sched.stats().running, 0u);
  EXPECT_EQ(sched.stats().waiting, 0u);
}

TEST(scheduler, a_full_queue_says_busy_and_waiting_requests_run_later) {
  fake_runner runner(1, 256);
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 1, .max_queue = 1, .prefill_chunk = 256});
  runner.pause(true);
  auto a = std::make_shared<recording_sink>(), b = std::make_shared<recording_sink>(),
       c = std::make_shared<recording_sink>();
  ASSERT_EQ(sched.submit(greedy(1, prompt_of(4), 3, a)).code, engine_status::ok);
  wait_until([&] { return sched.stats().running == 1; });
  ASSERT_EQ(sched.stats().running, 1u);
  ASSERT_EQ(sched.submit(greedy(2, prompt_of(4), 3, b)).code, engine_status::ok);
  EXPECT_EQ(sched.stats().waiting, 1u);
  auto busy = sched.submit(greedy(3, prompt_of(4), 3, c));
  EXPECT_EQ(busy.code, engine_status::busy);
  runner.pause(false);
  ASSERT_TRUE(a->wait());
  ASSERT_TRUE(b->wait());
  EXPECT_EQ(b->status, engine_status::ok);
  EXPECT_EQ(c->terminals, 0);  // a refused submit gets no events
}

TEST(scheduler, cancel_frees_the_slot_for_the_next_request) {
  fake_runner runner(1, 4096);
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 1, .max_queue = 8, .prefill_chunk = 256});
  auto a = std::make_shared<recording_sink>(), b = std::make_shared<recording_sink>();
  ASSERT_EQ(sched.submit(greedy(1, prompt_of(4), -1, a)).code, engine_status::ok);  // long
  ASSERT_EQ(sched.submit(greedy(2, prompt_of(6), 4, b)).code, engine_status::ok);
  wait_until([&] { return runner.steps() > 5; });
  EXPECT_EQ(b->terminals, 0);  // b waits for a's slot
  sched.cancel(1);
  ASSERT_TRUE(a->wait());
  EXPECT_EQ(a->status, engine_status::cancelled);
  ASSERT_TRUE(b->wait());
  EXPECT_EQ(b->status, engine_status::ok);
  EXPECT_EQ(b->choices[0].tokens, expected_greedy(prompt_of(6), 4));
  EXPECT_EQ(a->terminals, 1);
  EXPECT_FALSE(a->event_after_terminal);
  sched.cancel(1);  // unknown or finished ids are ignored
  sched.cancel(999);
}

TEST(scheduler, cancel_of_a_waiting_request_ends_it_without_running) {
  fake_runner runner(1, 256);
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 1, .max_queue = 8, .prefill_chunk = 256});
  runner.pause(true);
  auto a = std::make_shared<recording_sink>(), b = std::make_shared<recording_sink>();
  ASSERT_EQ(sched.submit(greedy(1, prompt_of(4), 3, a)).code, engine_status::ok);
  ASSERT_EQ(sched.submit(greedy(2, prompt_of(4), 3, b)).code, engine_status::ok);
  wait_until([&] { return sched.stats().waiting == 1; });
  sched.cancel(2);
  runner.pause(false);
  ASSERT_TRUE(b->wait());
  EXPECT_EQ(b->status, engine_status::cancelled);
  EXPECT_TRUE(b->choices.empty());
  ASSERT_TRUE(a->wait());
  EXPECT_EQ(a->status, engine_status::ok);
  wait_until([&] { return sched.stats().waiting == 0; });
  EXPECT_EQ(sched.stats().waiting, 0u);
}

TEST(scheduler, context_limits) {
  fake_runner runner(2, 16);
  fake_codec codec;
  scheduler sched(runner, codec, {});
  auto sink = std::make_shared<recording_sink>();
  auto r = sched.submit(greedy(1, prompt_of(16), 4, sink));
  EXPECT_EQ(r.code, engine_status::context_length);
  EXPECT_NE(r.message.find("16"), std::string::npos);
  // 15 prompt tokens leave room for exactly one answer token: finish_reason length.
  ASSERT_EQ(sched.submit(greedy(2, prompt_of(15), 100, sink)).code, engine_status::ok);
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->choices[0].tokens.size(), 1u);
  EXPECT_EQ(sink->choices[0].reason, finish_reason::length);
  // max_tokens -1 runs until the context is full.
  auto full = std::make_shared<recording_sink>();
  ASSERT_EQ(sched.submit(greedy(3, prompt_of(10), -1, full)).code, engine_status::ok);
  ASSERT_TRUE(full->wait());
  EXPECT_EQ(full->choices[0].tokens.size(), 6u);
  EXPECT_EQ(runner.misuse(), "");
}

TEST(scheduler, rejects_bad_token_ids_and_empty_prompts) {
  fake_runner runner(2, 64);
  fake_codec codec;
  scheduler sched(runner, codec, {});
  auto sink = std::make_shared<recording_sink>();
  EXPECT_EQ(sched.submit(greedy(1, {1, 99}, 4, sink)).code, engine_status::invalid_argument);
  EXPECT_EQ(sched.submit(greedy(2, {}, 4, sink)).code, engine_status::invalid_argument);
  auto r = greedy(3, {1, 2}, 4, sink);
  r.sampling.logit_bias = {{32, 1.0f}};
  EXPECT_EQ(sched.submit(std::move(r)).code, engine_status::invalid_argument);
}

TEST(scheduler, eos_and_stop_strings_finish_with_stop) {
  fake_runner runner(2, 128);
  fake_codec codec;
  scheduler sched(runner, codec, {});
  auto eos = std::make_shared<recording_sink>();
  auto r = greedy(1, prompt_of(5), 10, eos);
  r.sampling.logit_bias = {{0, 100.0f}};  // token 0 is end-of-generation
  ASSERT_EQ(sched.submit(std::move(r)).code, engine_status::ok);
  ASSERT_TRUE(eos->wait());
  EXPECT_EQ(eos->choices[0].reason, finish_reason::stop);
  EXPECT_EQ(eos->choices[0].text, "");
  EXPECT_EQ(eos->usage.completion_tokens, 1u);

  const auto want = letters(expected_greedy(prompt_of(5), 10));
  auto stop = std::make_shared<recording_sink>();
  r = greedy(2, prompt_of(5), 10, stop);
  r.sampling.stop = {want.substr(4, 3)};
  ASSERT_EQ(sched.submit(std::move(r)).code, engine_status::ok);
  ASSERT_TRUE(stop->wait());
  EXPECT_EQ(stop->choices[0].reason, finish_reason::stop);
  EXPECT_EQ(stop->choices[0].text, want.substr(0, want.find(want.substr(4, 3))));
}

TEST(scheduler, n_choices_are_indexed_per_prompt_and_reproducible_with_a_seed) {
  fake_runner runner(8, 128);  // room for all six choices at once
  fake_codec codec;
  scheduler sched(runner, codec, {});
  auto run = [&](uint64_t id) {
    auto sink = std::make_shared<recording_sink>();
    generate_request r;
    r.id = id;
    r.prompts = {prompt_of(6, 1), prompt_of(9, 2)};
    r.sampling.n = 3;
    r.sampling.temperature = 1.5f;
    r.sampling.seed = 77;
    r.sampling.max_tokens = 8;
    r.sampling.logprobs = 2;
    r.sampling.logit_bias = {{0, -100.0f}};  // no end-of-generation: every choice runs 8 tokens
    r.sink = sink;
    EXPECT_EQ(sched.submit(std::move(r)).code, engine_status::ok);
    EXPECT_TRUE(sink->wait());
    return sink;
  };
  auto a = run(1), b = run(2);
  ASSERT_EQ(a->choices.size(), 6u);
  for (uint32_t i = 0; i < 6; ++i) {
    EXPECT_EQ(a->choices[i].tokens.size(), 8u);
    EXPECT_EQ(a->choices[i].logprob_entries, 8u);
    EXPECT_EQ(a->choices[i].tokens, b->choices[i].tokens) << "choice " << i;
  }
  EXPECT_NE(a->choices[0].tokens, a->choices[1].tokens);  // different streams per choice
  EXPECT_EQ(a->usage.prompt_tokens, 15u);                 // each prompt counted once
  EXPECT_EQ(a->usage.completion_tokens, 48u);
  // Each prompt was computed once per request; the other choices copied its KV.
  EXPECT_EQ(runner.total_prefill_tokens(), 2 * 15);
  EXPECT_EQ(runner.misuse(), "");
}

TEST(scheduler, choices_admitted_after_the_prompt_ran_prefill_themselves) {
  fake_runner runner(1, 128);  // one slot: the choices run one after another
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 1, .max_queue = 8, .prefill_chunk = 256});
  auto sink = std::make_shared<recording_sink>();
  auto r = greedy(1, prompt_of(7), 5, sink);
  r.sampling.n = 3;
  ASSERT_EQ(sched.submit(std::move(r)).code, engine_status::ok);
  ASSERT_TRUE(sink->wait());
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(sink->choices[i].tokens, expected_greedy(prompt_of(7), 5));
  EXPECT_EQ(runner.total_prefill_tokens(), 3 * 7);
}

TEST(scheduler, echo_and_zero_max_tokens) {
  fake_runner runner(2, 128);
  fake_codec codec;
  scheduler sched(runner, codec, {});
  auto sink = std::make_shared<recording_sink>();
  auto r = greedy(1, prompt_of(3), 0, sink);
  r.echo_text = {"the prompt"};
  ASSERT_EQ(sched.submit(std::move(r)).code, engine_status::ok);
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->choices[0].text, "the prompt");
  EXPECT_EQ(sink->choices[0].reason, finish_reason::length);
  EXPECT_EQ(sink->usage.completion_tokens, 0u);
}

TEST(scheduler, embeddings_are_mean_pooled_unit_vectors) {
  fake_runner runner(2, 128);
  fake_codec codec;
  scheduler sched(runner, codec, {.max_batch = 2, .max_queue = 8, .prefill_chunk = 3});
  auto sink = std::make_shared<recording_sink>();
  generate_request r;
  r.id = 1;
  r.embedding = true;
  r.prompts = {{2, 4, 6, 8, 10}, {3}};
  r.sink = sink;
  ASSERT_EQ(sched.submit(std::move(r)).code, engine_status::ok);
  ASSERT_TRUE(sink->wait());
  ASSERT_EQ(sink->status, engine_status::ok);
  ASSERT_EQ(sink->embeddings.size(), 2u);
  // Mean rows: (6, 1, 0, 0) and (3, 1, 0, 0), normalized.
  const auto& e0 = sink->embeddings[0];
  EXPECT_NEAR(e0[0], 6.0 / std::sqrt(37.0), 1e-6);
  EXPECT_NEAR(e0[1], 1.0 / std::sqrt(37.0), 1e-6);
  EXPECT_NEAR(sink->embeddings[1][0], 3.0 / std::sqrt(10.0), 1e-6);
  EXPECT_EQ(sink->usage.prompt_tokens, 6u);
  EXPECT_EQ(sink->usage.completion_tokens, 0u);
}

TEST(scheduler, a_failing_forward_pass_errors_the_batch_and_serving_continues) {
  fake_runner runner(2, 128);
  fake_codec codec;
  scheduler sched(runner, codec, {});
  runner.fail_next();
  auto a = std::make_shared<recording_sink>();
  ASSERT_EQ(sched.submit(greedy(1, prompt_of(4), 3, a)).code, engine_status::ok);
  ASSERT_TRUE(a->wait());
  EXPECT_EQ(a->status, engine_status::internal);
  auto b = std::make_shared<recording_sink>();
  ASSERT_EQ(sched.submit(greedy(2, prompt_of(4), 3, b)).code, engine_status::ok);
  ASSERT_TRUE(b->wait());
  EXPECT_EQ(b->status, engine_status::ok);
}

// A host may call cancel() from inside its event callback (on the engine thread).
class cancelling_sink : public recording_sink {
 public:
  scheduler* sched = nullptr;
  uint64_t id = 0;
  void on_delta(uint32_t index, std::string_view text, std::span<const int32_t> tokens,
                std::span<const logprob_entry> logprobs) override {
    recording_sink::on_delta(index, text, tokens, logprobs);
    sched->cancel(id);
  }
};

TEST(scheduler, cancel_from_inside_a_callback_ends_the_request) {
  fake_runner runner(2, 4096);
  fake_codec codec;
  scheduler sched(runner, codec, {});
  auto sink = std::make_shared<cancelling_sink>();
  sink->sched = &sched;
  sink->id = 5;
  ASSERT_EQ(sched.submit(greedy(5, prompt_of(4), -1, sink)).code, engine_status::ok);
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->status, engine_status::cancelled);
  EXPECT_LE(sink->choices[0].tokens.size(), 2u);  // honoured within one step
}

TEST(scheduler, shutdown_ends_every_request_with_one_terminal_event) {
  fake_runner runner(1, 4096);
  fake_codec codec;
  std::vector<std::shared_ptr<recording_sink>> sinks;
  {
    scheduler sched(runner, codec, {.max_batch = 1, .max_queue = 8, .prefill_chunk = 256});
    for (int i = 0; i < 3; ++i) {
      sinks.push_back(std::make_shared<recording_sink>());
      ASSERT_EQ(sched.submit(greedy(i + 1, prompt_of(4), -1, sinks.back())).code, engine_status::ok);
    }
    wait_until([&] { return runner.steps() > 3; });
  }
  for (auto& s : sinks) {
    EXPECT_EQ(s->terminals, 1);
    EXPECT_EQ(s->status, engine_status::unavailable);
  }
}

}  // namespace
}  // namespace moat::engine
