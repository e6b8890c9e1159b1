// The whole plan: smallest fit, the requested split, KV offload, speed from its formula.
#include <gtest/gtest.h>

#include <cmath>

#include "plan.h"

namespace moat::planner {
namespace {

plan_inputs inputs(const char* model, const char* dev, weight_format w, std::int64_t context,
                   std::int64_t concurrency, int gpus = 0) {
  plan_inputs in;
  in.model = load_model(model);
  in.dev = builtin_catalogue().find(dev);
  in.weights = w;
  in.context = context;
  in.concurrency = concurrency;
  in.gpus = gpus;
  in.factors = find_factors(in.dev, {});  // the catalogue's defaults
  return in;
}

TEST(plan, smallest_fit_of_70b_fp16_is_two_h100) {
  const auto r = make_plan(inputs("llama-3.1-70b", "h100-80g", weight_format::fp16, 4096, 1));
  ASSERT_TRUE(r.needed);
  EXPECT_EQ(r.needed->devices(), 2);
  EXPECT_EQ(r.needed->tp, 2);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.kv_offload_bytes, 0);
  EXPECT_LT(r.on_device.total(), r.on_device.capacity);
}

TEST(plan, smallest_fit_of_405b_fp16_needs_two_servers) {
  // 812 GB of weights: TP is capped at 8 by the 8 KV heads and the server, so 2 stages of 8.
  const auto r = make_plan(inputs("llama-3.1-405b", "h100-80g", weight_format::fp16, 4096, 1));
  ASSERT_TRUE(r.needed);
  EXPECT_EQ(r.needed->tp, 8);
  EXPECT_EQ(r.needed->pp, 2);
  const auto on8 = make_plan(inputs("llama-3.1-405b", "h100-80g", weight_format::fp16, 4096, 1, 8));
  EXPECT_FALSE(on8.fits);
  EXPECT_FALSE(on8.runs);  // the weights alone overflow: no KV offload can help
  bool suggests_int8 = false;
  for (const auto& a : on8.advice) suggests_int8 |= a.find("--weights int8") != std::string::npos;
  EXPECT_TRUE(suggests_int8);
}

TEST(plan, smallest_fit_skips_tp_degrees_that_do_not_divide_the_heads) {
  // Llama 3.1 70B int8 with 16 x 8k of fp16 KV: 71.6 GB + 43 GB, which three L40S would hold
  // (about 40 GB a card), but TP 3 does not divide 8 KV heads: the answer is TP 4.
  const auto r = make_plan(inputs("llama-3.1-70b", "l40s", weight_format::int8, 8192, 16));
  const memory_model mm(r.in.model, r.in.weights, r.in.group, r.in.kv);
  EXPECT_TRUE(mm.on_device({3, 1}, r.in.dev, 8192, 16).fits());   // memory alone would allow 3
  EXPECT_FALSE(mm.on_device({2, 1}, r.in.dev, 8192, 16).fits());
  ASSERT_TRUE(r.needed);
  EXPECT_EQ(r.needed->tp, 4);
  EXPECT_EQ(r.needed->pp, 1);
}

TEST(plan, gpus_that_do_not_divide_the_heads_are_refused) {
  EXPECT_THROW(make_plan(inputs("llama-3.1-8b", "h100-80g", weight_format::fp16, 4096, 1, 3)), plan_error);
  try {
    make_plan(inputs("llama-3.1-405b", "a100-40g", weight_format::int4, 4096, 1, 10));
    FAIL() << "ten A100s as TP 10 were accepted";
  } catch (const plan_error& e) {
    EXPECT_NE(std::string(e.what()).find("--tp 2 (5 stages)"), std::string::npos) << e.what();
  }
  auto in = inputs("llama-3.1-405b", "a100-40g", weight_format::int4, 4096, 1, 10);
  in.tp = 2;
  const auto r = make_plan(in);
  ASSERT_TRUE(r.planned);
  EXPECT_EQ(r.planned->tp, 2);
  EXPECT_EQ(r.planned->pp, 5);
  in.tp = 3;
  EXPECT_THROW(make_plan(in), plan_error);
  in.tp = 4;  // 10 is not a multiple of 4
  EXPECT_THROW(make_plan(in), plan_error);
}

TEST(plan, kv_that_overflows_goes_to_host_memory) {
  // 405B int4 on 8 x A100 40GB: ~232 GB of weights leave ~8 GB a card for KV; 16 sequences of
  // 32k tokens need 16 * 32768 * 516 KiB = 271 GB.
  const auto r = make_plan(inputs("llama-3.1-405b", "a100-40g", weight_format::int4, 32768, 16, 8));
  EXPECT_FALSE(r.fits);
  EXPECT_TRUE(r.runs);
  const double expected = (r.on_device.kv - r.on_device.kv_room()) * 8;
  EXPECT_NEAR(r.kv_offload_bytes, expected, 1.0);
  EXPECT_GT(r.kv_offload_bytes, 0.5 * r.kv_bytes_total);
  ASSERT_TRUE(r.perf);
  EXPECT_GT(r.perf->offload_seconds, 0);
  EXPECT_NEAR(r.perf->offload_seconds, r.kv_offload_bytes / 8 / (32e9), 1e-9);
}

TEST(plan, decode_speed_is_bytes_over_bandwidth) {
  // One sequence on one card: memory bound; a step streams the weights read and the KV cache.
  auto in = inputs("llama-3.1-8b", "h100-80g", weight_format::fp16, 4096, 1, 1);
  const auto r = make_plan(in);
  ASSERT_TRUE(r.perf);
  const auto m = in.model;
  const double weights_read = 2.0 * static_cast<double>(m.total_params() - m.embedding_params() - m.hidden) +
                              2.0 * static_cast<double>(m.hidden);
  const double kv = 2.0 * 32 * 8 * 128 * 2 * 4096;
  const double seconds = (weights_read + kv) / (3350e9 * 0.75);
  EXPECT_EQ(r.perf->bound, "memory bandwidth");
  EXPECT_NEAR(r.perf->step_seconds, seconds, seconds * 1e-9);
  EXPECT_NEAR(r.perf->decode_tokens_per_s, 1.0 / seconds, 1e-6);
  EXPECT_GT(r.perf->decode_tokens_per_s, 100);  // 15.5 GB read at 2.5 TB/s: ~160 tokens/s
  EXPECT_LT(r.perf->decode_tokens_per_s, 170);
}

TEST(plan, batching_raises_aggregate_not_per_sequence_speed) {
  const auto one = make_plan(inputs("llama-3.1-8b", "h100-80g", weight_format::fp16, 2048, 1, 1));
  const auto many = make_plan(inputs("llama-3.1-8b", "h100-80g", weight_format::fp16, 2048, 32, 1));
  ASSERT_TRUE(one.perf && many.perf);
  EXPECT_GT(many.perf->decode_tokens_per_s, 10 * one.perf->decode_tokens_per_s);
  EXPECT_LT(many.perf->decode_tokens_per_s_per_sequence, one.perf->decode_tokens_per_s_per_sequence);
}

TEST(plan, target_gives_copies_and_bad_workloads_are_errors) {
  auto in = inputs("llama-3.1-8b", "l40s", weight_format::fp16, 4096, 8, 1);
  in.target_tokens_per_s = 5000;
  const auto r = make_plan(in);
  ASSERT_TRUE(r.replicas_for_target && r.perf);
  EXPECT_EQ(*r.replicas_for_target, std::llround(std::ceil(5000 / r.perf->decode_tokens_per_s)));
  in.target_tokens_per_s = 1e12;  // reachable only on paper: still a number, no overflow
  EXPECT_TRUE(make_plan(in).replicas_for_target);
  in.target_tokens_per_s = 1e13;
  EXPECT_THROW(make_plan(in), plan_error);
  in.target_tokens_per_s = 0;
  in.context = 0;
  EXPECT_THROW(make_plan(in), plan_error);
  in.context = 4096;
  in.concurrency = 0;
  EXPECT_THROW(make_plan(in), plan_error);
}

TEST(plan, n_choices_sharing_a_prompt_need_less_kv) {
  // 64 choices of one 8000-token prompt, 192 tokens each: the prompt's 500 blocks once, then
  // ceil(192 / 16) = 12 blocks per choice, against 64 * 512 blocks without sharing.
  auto in = inputs("llama-3.1-8b", "h100-80g", weight_format::fp16, 8192, 64, 1);
  const auto apart = make_plan(in);
  in.paging = kv_paging{.block_size = 16, .prompt = 8000, .n = 64};
  const auto shared = make_plan(in);
  EXPECT_EQ(apart.kv_blocks, 64 * 512);
  EXPECT_EQ(shared.kv_blocks, 500 + 64 * 12);
  EXPECT_DOUBLE_EQ(shared.kv_bytes_total, shared.kv_bytes_per_token * 16 * (500 + 64 * 12));
  EXPECT_DOUBLE_EQ(shared.on_device.kv, shared.kv_bytes_total);
  EXPECT_FALSE(apart.fits);  // 16 GB of weights and 68.7 GB of KV on one 80 GB card
  EXPECT_TRUE(shared.fits);  // the same weights and 2.7 GB of KV
  in.paging.prompt = 9000;   // more than the context
  EXPECT_THROW(make_plan(in), plan_error);
}

TEST(plan, cpu_server_never_offloads) {
  const auto r = make_plan(inputs("llama-3.1-8b", "cpu-2s", weight_format::int8, 8192, 4, 1));
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.kv_offload_bytes, 0);
  ASSERT_TRUE(r.perf);
  EXPECT_EQ(r.perf->comm_seconds, 0);
}

}  // namespace
}  // namespace moat::planner
