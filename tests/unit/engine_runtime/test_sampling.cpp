// Sampling: masks, penalties, bias, greedy ties, logprobs and seeded distributions.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/sampling.h"

namespace moat::engine {
namespace {

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

// Draws `draws` tokens with one sampler and returns the observed frequencies.
std::vector<double> frequencies(const sampling_params& p, const std::vector<float>& logits,
                                int draws) {
  sampler s(p, 0, static_cast<int32_t>(logits.size()));
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < draws; ++i) {
    std::vector<float> l = logits;
    f[s.sample(l).token] += 1.0 / draws;
  }
  return f;
}

TEST(sampling, greedy_picks_argmax_and_lowest_id_on_ties) {
  sampling_params p;
  p.temperature = 0.0f;
  sampler s(p, 0, 5);
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
  EXPECT_EQ(s.sample(l).token, 1);
  std::vector<float> l2 = {3.0f, 3.0f, 3.0f};
  EXPECT_EQ(argmax(l2), 0);
}

TEST(sampling, log_softmax_normalizes) {
  std::vector<float> l = {1.0f, 2.0f, 3.0f, -50.0f};
  std::vector<float> out(4);
  log_softmax(l, out);
  double sum = 0;
  for (float v : out) sum += std::exp(v);
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_NEAR(out[2] - out[1], 1.0, 1e-6);
}

TEST(sampling, logprobs_are_raw_before_bias_and_temperature) {
  sampling_params p;
  p.temperature = 0.0f;
  p.logprobs = 2;
  p.logit_bias = {{2, 100.0f}};  // forces token 2, but its reported logprob stays the raw one
  sampler s(p, 0, 3);
  std::vector<float> l = logits_of({0.6, 0.3, 0.1});
  auto r = s.sample(l);
  EXPECT_EQ(r.token, 2);
  EXPECT_NEAR(r.logprob, std::log(0.1), 1e-5);
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].token, 0);
  EXPECT_NEAR(r.top[0].logprob, std::log(0.6), 1e-5);
  EXPECT_EQ(r.top[1].token, 1);
}

TEST(sampling, top_logprobs_zero_gives_only_the_chosen) {
  sampling_params p;
  p.temperature = 0.0f;
  p.logprobs = 0;
  sampler s(p, 0, 3);
  std::vector<float> l = logits_of({0.2, 0.5, 0.3});
  auto r = s.sample(l);
  EXPECT_EQ(r.token, 1);
  EXPECT_TRUE(r.top.empty());
  EXPECT_NEAR(r.logprob, std::log(0.5), 1e-5);
}

TEST(sampling, negative_bias_removes_the_argmax) {
  sampling_params p;
  p.temperature = 0.0f;
  p.logit_bias = {{0, -100.0f}};
  sampler s(p, 0, 3);
  std::vector<float> l = logits_of({0.6, 0.3, 0.1});
  EXPECT_EQ(s.sample(l).token, 1);
}

TEST(sampling, same_seed_same_tokens_other_stream_other_tokens) {
  sampling_params p;
  p.seed = 1234;
  std::vector<float> logits = logits_of({0.25, 0.25, 0.25, 0.25});
  auto run = [&](uint64_t stream) {
    sampler s(p, stream, 4);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) {
      auto l = logits;
      out.push_back(s.sample(l).token);
    }
    return out;
  };
  EXPECT_EQ(run(0), run(0));
  EXPECT_NE(run(0), run(1));
  p.seed = 1235;
  sampler other(p, 0, 4);
  std::vector<int32_t> out;
  for (int i = 0; i < 64; ++i) {
    auto l = logits;
    out.push_back(other.sample(l).token);
  }
  p.seed = 1234;
  EXPECT_NE(out, run(0));
}

TEST(sampling, draws_follow_the_distribution) {
  sampling_params p;
  p.seed = 7;
  auto f = frequencies(p, logits_of({0.5, 0.3, 0.2}), 40000);
  EXPECT_NEAR(f[0], 0.5, 0.015);
  EXPECT_NEAR(f[1], 0.3, 0.015);
  EXPECT_NEAR(f[2], 0.2, 0.015);
}

TEST(sampling, temperature_sharpens) {
  sampling_params p;
  p.seed = 8;
  p.temperature = 0.5f;  // p^2 renormalized: 0.25, 0.09, 0.04 over 0.38
  auto f = frequencies(p, logits_of({0.5, 0.3, 0.2}), 40000);
  EXPECT_NEAR(f[0], 0.25 / 0.38, 0.015);
  EXPECT_NEAR(f[1], 0.09 / 0.38, 0.015);
  EXPECT_NEAR(f[2], 0.04 / 0.38, 0.015);
}

TEST(sampling, top_k_masks_and_renormalizes) {
  sampling_params p;
  p.seed = 9;
  p.top_k = 2;
  auto f = frequencies(p, logits_of({0.5, 0.3, 0.2}), 40000);
  EXPECT_EQ(f[2], 0.0);
  EXPECT_NEAR(f[0], 0.5 / 0.8, 0.015);
}

TEST(sampling, top_p_keeps_the_smallest_prefix_reaching_p) {
  sampling_params p;
  p.seed = 10;
  p.top_p = 0.6f;  // 0.5 < 0.6, 0.5 + 0.3 >= 0.6: keeps two
  auto f = frequencies(p, logits_of({0.5, 0.3, 0.2}), 40000);
  EXPECT_EQ(f[2], 0.0);
  EXPECT_NEAR(f[1], 0.3 / 0.8, 0.015);
  p.top_p = 0.5f;  // the mode alone reaches it
  f = frequencies(p, logits_of({0.5, 0.3, 0.2}), 2000);
  EXPECT_EQ(f[1], 0.0);
  EXPECT_EQ(f[2], 0.0);
}

TEST(sampling, min_p_drops_tokens_below_a_fraction_of_the_mode) {
  sampling_params p;
  p.seed = 11;
  p.min_p = 0.5f;  // threshold 0.25: keeps 0.5 and 0.3
  auto f = frequencies(p, logits_of({0.5, 0.3, 0.2}), 40000);
  EXPECT_EQ(f[2], 0.0);
  EXPECT_NEAR(f[0], 0.5 / 0.8, 0.015);
}

TEST(sampling, top_k_then_top_p_on_the_renormalized_rest) {
  sampling_params p;
  p.seed = 12;
  p.top_k = 3;
  p.top_p = 0.7f;  // over {0.4,0.3,0.2}/0.9: 0.444, 0.778 → keeps two
  auto f = frequencies(p, logits_of({0.4, 0.3, 0.2, 0.1}), 20000);
  EXPECT_EQ(f[2], 0.0);
  EXPECT_EQ(f[3], 0.0);
  EXPECT_GT(f[1], 0.3);
}

TEST(sampling, presence_and_frequency_penalties_follow_openai) {
  sampling_params p;
  p.temperature = 0.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  sampler s(p, 0, 4);
  s.accept(1);
  s.accept(1);
  s.accept(3);
  std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f};
  s.sample(l);
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], 1.0f - 0.5f - 2 * 0.25f);
  EXPECT_FLOAT_EQ(l[2], 1.0f);
  EXPECT_FLOAT_EQ(l[3], 1.0f - 0.5f - 0.25f);
}

TEST(sampling, repetition_penalty_changes_greedy_choice) {
  sampling_params p;
  p.temperature = 0.0f;
  p.frequency_penalty = 1.0f;
  sampler s(p, 0, 2);
  std::vector<int32_t> out;
  for (int i = 0; i < 4; ++i) {
    std::vector<float> l = {1.5f, 1.0f};
    int32_t t = s.sample(l).token;
    s.accept(t);
    out.push_back(t);
  }
  EXPECT_EQ(out, (std::vector<int32_t>{0, 1, 0, 1}));
}

}  // namespace
}  // namespace moat::engine

namespace moat::engine {
namespace {

// The masks reach past the sorted head of 256 tokens: the sampler must sort further.
TEST(sampling, masks_wider_than_the_sorted_head) {
  std::vector<float> flat(2000, 0.0f);  // uniform: ties order by id
  sampling_params p;
  p.seed = 21;
  p.top_p = 0.5f;
  sampler s(p, 0, 2000);
  int32_t max_id = 0;
  double mean = 0;
  const int draws = 3000;
  for (int i = 0; i < draws; ++i) {
    auto l = flat;
    int32_t t = s.sample(l).token;
    max_id = std::max(max_id, t);
    mean += static_cast<double>(t) / draws;
  }
  EXPECT_LT(max_id, 1000);
  EXPECT_GT(max_id, 950);
  EXPECT_NEAR(mean, 500.0, 25.0);

  // min_p keeps every token within the factor: 400 high tokens, 1600 far below.
  std::vector<float> two_level(2000, -10.0f);
  for (int i = 0; i < 400; ++i) two_level[static_cast<size_t>(i) * 5] = 0.0f;
  p.top_p = 1.0f;
  p.min_p = 0.5f;
  sampler m(p, 0, 2000);
  std::vector<bool> seen(2000, false);
  for (int i = 0; i < draws; ++i) {
    auto l = two_level;
    int32_t t = m.sample(l).token;
    ASSERT_EQ(t % 5, 0) << t;
    seen[static_cast<size_t>(t)] = true;
  }
  int distinct = 0;
  for (bool b : seen) distinct += b;
  EXPECT_GT(distinct, 380);  // all 400 survive the mask, not just a sorted head of 256
}

}  // namespace
}  // namespace moat::engine
