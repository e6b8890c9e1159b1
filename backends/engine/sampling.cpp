#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace moat::engine {

namespace {
constexpr float greedy_below = 1e-5f;
}

uint64_t mix_seed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void log_softmax(std::span<const float> logits, std::span<float> out) {
  float max = -std::numeric_limits<float>::infinity();
  for (float v : logits) max = std::max(max, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  const double log_z = static_cast<double>(max) + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<float>(logits[i] - log_z);
}

std::vector<token_logprob> top_entries(std::span<const float> values, int32_t k) {
  std::vector<int32_t> ids(values.size());
  std::iota(ids.begin(), ids.end(), 0);
  const size_t keep = std::min<size_t>(static_cast<size_t>(std::max(k, 0)), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(),
                    [&](int32_t a, int32_t b) {
                      return values[a] != values[b] ? values[a] > values[b] : a < b;
                    });
  std::vector<token_logprob> out;
  out.reserve(keep);
  for (size_t i = 0; i < keep; ++i) out.push_back({ids[i], values[ids[i]]});
  return out;
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);  // strict: lowest id wins ties
  return best;
}

sampler::sampler(const sampling_params& params, uint64_t stream, int32_t vocab_size)
    : params_(params),
      vocab_size_(vocab_size),
      rng_(mix_seed(params.seed ^ mix_seed(stream + 1))) {}

double sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

void sampler::accept(int32_t token) { ++counts_[token]; }

sample_result sampler::sample(std::span<float> logits) {
  sample_result result;
  std::vector<float> raw_logprobs;
  if (params_.logprobs >= 0) {
    raw_logprobs.resize(logits.size());
    log_softmax(logits, raw_logprobs);
    result.top = top_entries(raw_logprobs, params_.logprobs);
  }

  for (const auto& [token, bias] : params_.logit_bias)
    if (token >= 0 && token < static_cast<int32_t>(logits.size())) logits[token] += bias;
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [token, count] : counts_) {
      if (token < 0 || token >= static_cast<int32_t>(logits.size())) continue;
      logits[token] -= params_.frequency_penalty * static_cast<float>(count) +
                       params_.presence_penalty;
    }
  }

  result.token = params_.temperature < greedy_below ? argmax(logits) : draw(logits);
  if (params_.logprobs >= 0) result.logprob = raw_logprobs[result.token];
  return result;
}

int32_t sampler::draw(std::span<const float> logits) {
  const size_t n = logits.size();
  const float inv_t = 1.0f / params_.temperature;
  float max = -std::numeric_limits<float>::infinity();
  for (float v : logits) max = std::max(max, v * inv_t);
  probs_.resize(n);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    probs_[i] = std::exp(logits[i] * inv_t - max);
    sum += probs_[i];
  }

  const bool use_top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n;
  const bool use_top_p = params_.top_p > 0.0f && params_.top_p < 1.0f;
  const bool use_min_p = params_.min_p > 0.0f;
  if (!use_top_k && !use_top_p && !use_min_p) {
    // No mask: walk the ids in order; the draw is still a deterministic function of the seed.
    double target = uniform() * sum;
    for (size_t i = 0; i < n; ++i) {
      target -= probs_[i];
      if (target < 0.0) return static_cast<int32_t>(i);
    }
    return argmax(logits);  // rounding left the walk a hair short: the mode is the safe pick
  }

  // Sort ids by probability (ties towards the lowest id); every mask keeps a prefix of this order.
  // Large vocabularies: the masks usually keep a few dozen tokens, so only a head is sorted
  // first, and more only when a mask reaches past it. The order is total, so a longer sort
  // never reorders what a shorter one placed.
  order_.resize(n);
  std::iota(order_.begin(), order_.end(), 0);
  auto by_prob = [&](int32_t a, int32_t b) {
    return probs_[a] != probs_[b] ? probs_[a] > probs_[b] : a < b;
  };
  size_t sorted = 0;
  auto sort_prefix = [&](size_t count) {
    count = std::min(count, n);
    if (count <= sorted) return;
    std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(count),
                      order_.end(), by_prob);
    sorted = count;
  };
  size_t keep = n;
  double kept = sum;
  if (use_top_k) {
    keep = static_cast<size_t>(params_.top_k);
    sort_prefix(keep);
    kept = 0.0;
    for (size_t i = 0; i < keep; ++i) kept += probs_[order_[i]];
  } else {
    sort_prefix(256);
  }
  if (use_min_p) {
    // probs_ are relative to the mode (exp(0) = 1 there), so the threshold is min_p itself.
    const float threshold = params_.min_p * probs_[order_[0]];
    size_t k = 1;
    for (; k < keep; ++k) {
      if (k >= sorted) sort_prefix(keep);
      if (probs_[order_[k]] < threshold) break;
    }
    keep = k;
    kept = 0.0;
    for (size_t i = 0; i < keep; ++i) kept += probs_[order_[i]];
  }
  if (use_top_p) {
    const double limit = static_cast<double>(params_.top_p) * kept;
    double cumulative = 0.0;
    size_t k = 0;
    while (k < keep) {
      if (k >= sorted) sort_prefix(keep);
      cumulative += probs_[order_[k]];
      ++k;
      if (cumulative >= limit) break;
    }
    keep = k;
    kept = cumulative;
  }
  double target = uniform() * kept;
  for (size_t i = 0; i < keep; ++i) {
    target -= probs_[order_[i]];
    if (target < 0.0) return order_[i];
  }
  return order_[0];
}

}  // namespace moat::engine
