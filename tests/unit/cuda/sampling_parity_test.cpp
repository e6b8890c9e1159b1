// Device sampling parity with the CPU sampler: for random requests (temperature, top_k, top_p,
// min_p, presence/frequency penalties, logit_bias, seeds, several choices) run step by step,
// the host preparation (backends/cuda/sampling_prep.h) plus the device sampler's semantics
// (kernels::reference::sample_ordered, the algorithm the kernel runs) must give exactly the
// tokens engine::sampler gives, and the adjusted logits must be the CPU's bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/sampling.h"
#include "kernels/reference/reference.h"
#include "sampling_prep.h"

namespace moat::cuda {
namespace {

struct case_spec {
  int32_t vocab;
  engine::sampling_params params;
  bool ties;  // logits on a coarse grid, so equal probabilities are common
};

std::vector<float> logits_for(std::mt19937& rng, int32_t vocab, bool ties) {
  std::normal_distribution<float> d(0.0f, 2.5f);
  std::vector<float> l(static_cast<size_t>(vocab));
  for (auto& v : l) v = ties ? std::round(d(rng) * 2.0f) / 2.0f : d(rng);
  return l;
}

// Runs `steps` tokens of one choice on both paths; returns how many steps were compared.
int run_case(const case_spec& c, uint64_t stream, int steps, uint32_t logits_seed) {
  engine::sampler cpu(c.params, stream, c.vocab);
  device_sampling_state dev(c.params, stream, c.vocab);
  std::mt19937 rng(logits_seed);
  for (int s = 0; s < steps; ++s) {
    const std::vector<float> raw = logits_for(rng, c.vocab, c.ties);
    std::vector<float> cpu_logits = raw, dev_logits = raw;
    const int32_t want = cpu.sample(cpu_logits).token;
    cpu.accept(want);

    const device_row row = dev.next();
    apply_adds(row, dev_logits);
    EXPECT_EQ(dev_logits, cpu_logits) << "adjusted logits differ at step " << s;
    int32_t got = -1;
    kernels::reference::sample_ordered(dev_logits.data(), 1, c.vocab, row.knobs, &row.u, &got);
    if (got != want) {
      ADD_FAILURE() << "step " << s << ": device " << got << ", cpu " << want << " (vocab " << c.vocab
                    << ", T " << c.params.temperature << ", top_k " << c.params.top_k << ", top_p "
                    << c.params.top_p << ", min_p " << c.params.min_p << ", ties " << c.ties << ")";
      return s;
    }
    dev.accept(got);
  }
  return steps;
}

TEST(SamplingParity, GreedyAndUnmaskedDraws) {
  for (const int32_t vocab : {2, 37, 1000}) {
    for (const float t : {0.0f, 1e-6f, 0.7f, 1.0f, 1.8f}) {
      engine::sampling_params p;
      p.temperature = t;
      p.seed = 1234 + vocab;
      for (uint64_t stream = 0; stream < 3; ++stream) {
        EXPECT_EQ(run_case({vocab, p, false}, stream, 40, 7 + vocab), 40);
        EXPECT_EQ(run_case({vocab, p, true}, stream, 40, 9 + vocab), 40);
      }
    }
  }
}

TEST(SamplingParity, MasksWithAndWithoutTies) {
  int compared = 0;
  for (const int32_t vocab : {5, 64, 777}) {
    for (const int32_t top_k : {0, 1, 3, 40}) {
      for (const float top_p : {1.0f, 0.95f, 0.5f, 0.05f}) {
        for (const float min_p : {0.0f, 0.02f, 0.3f}) {
          if (top_k == 0 && top_p == 1.0f && min_p == 0.0f) continue;  // unmasked: the test above
          engine::sampling_params p;
          p.temperature = 0.9f;
          p.top_k = top_k;
          p.top_p = top_p;
          p.min_p = min_p;
          p.seed = static_cast<uint64_t>(vocab * 1000 + top_k * 10) + static_cast<uint64_t>(top_p * 100);
          for (const bool ties : {false, true}) {
            compared += run_case({vocab, p, ties}, 1, 25, static_cast<uint32_t>(p.seed) + ties);
          }
        }
      }
    }
  }
  EXPECT_EQ(compared, 3 * 4 * 4 * 3 * 2 * 25 - 3 * 2 * 25);
}

TEST(SamplingParity, PenaltiesBiasAndSeedsAcrossChoices) {
  engine::sampling_params p;
  p.temperature = 0.8f;
  p.top_p = 0.9f;
  p.top_k = 50;
  p.presence_penalty = 0.7f;
  p.frequency_penalty = 1.3f;
  p.logit_bias = {{3, 5.0f}, {10, -100.0f}, {99, 2.5f}, {5000, 1.0f} /* outside the vocabulary */};
  p.seed = 42;
  for (uint64_t stream = 0; stream < 4; ++stream) EXPECT_EQ(run_case({128, p, false}, stream, 60, 11), 60);
  // Negative penalties (allowed by OpenAI: -2..2) and greedy with penalties.
  p.presence_penalty = -1.5f;
  p.frequency_penalty = -0.25f;
  EXPECT_EQ(run_case({128, p, true}, 0, 60, 12), 60);
  p.temperature = 0.0f;
  EXPECT_EQ(run_case({128, p, false}, 0, 60, 13), 60);
}

TEST(SamplingParity, TheSameSeedGivesTheSameRowsAndAnotherSeedOthers) {
  engine::sampling_params p;
  p.temperature = 1.0f;
  p.seed = 7;
  device_sampling_state a(p, 0, 100), b(p, 0, 100), other_choice(p, 1, 100);
  p.seed = 8;
  device_sampling_state other_seed(p, 0, 100);
  int same_choice = 0, same_seed = 0;
  for (int i = 0; i < 50; ++i) {
    const double u = a.next().u;
    EXPECT_EQ(u, b.next().u);
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    same_choice += u == other_choice.next().u;
    same_seed += u == other_seed.next().u;
  }
  EXPECT_EQ(same_choice, 0);
  EXPECT_EQ(same_seed, 0);
  // Greedy consumes nothing: a greedy request's later rows are those of a fresh generator.
  p.temperature = 0.0f;
  device_sampling_state g(p, 0, 100);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(g.next().greedy);
}

TEST(SamplingParity, KnobsAreNormalized) {
  engine::sampling_params p;
  p.temperature = 0.5f;
  p.top_k = 1000;  // not below the vocabulary: off
  p.top_p = 1.5f;  // off
  p.min_p = -1.0f;
  device_sampling_state s(p, 0, 100);
  const device_row r = s.next();
  EXPECT_FALSE(r.greedy);
  EXPECT_EQ(r.knobs.top_k, 0);
  EXPECT_EQ(r.knobs.top_p, 1.0f);
  EXPECT_EQ(r.knobs.min_p, 0.0f);
  EXPECT_TRUE(r.adds.empty());
}

}  // namespace
}  // namespace moat::cuda
