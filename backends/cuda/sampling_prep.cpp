#include "sampling_prep.h"

namespace moat::cuda {

namespace {
constexpr float greedy_below = 1e-5f;  // engine/sampling.cpp's threshold
}

device_sampling_state::device_sampling_state(const engine::sampling_params& params, uint64_t stream,
                                             int32_t vocab_size)
    : params_(params),
      vocab_size_(vocab_size),
      // The CPU sampler's seeding, so a seed gives the same numbers on either backend.
      rng_(engine::mix_seed(params.seed ^ engine::mix_seed(stream + 1))) {}

device_row device_sampling_state::next() {
  device_row row;
  row.greedy = params_.temperature < greedy_below;
  row.knobs.temperature = row.greedy ? 0.0f : params_.temperature;
  row.knobs.top_k = params_.top_k > 0 && params_.top_k < vocab_size_ ? params_.top_k : 0;
  row.knobs.top_p = params_.top_p > 0.0f && params_.top_p < 1.0f ? params_.top_p : 1.0f;
  row.knobs.min_p = params_.min_p > 0.0f ? params_.min_p : 0.0f;
  for (const auto& [token, bias] : params_.logit_bias) {
    if (token >= 0 && token < vocab_size_) row.adds.emplace_back(token, bias);
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [token, count] : counts_) {
      if (token < 0 || token >= vocab_size_) continue;
      // The CPU subtracts (frequency * count + presence), computed in float.
      const float penalty = params_.frequency_penalty * static_cast<float>(count) + params_.presence_penalty;
      row.adds.emplace_back(token, -penalty);
    }
  }
  // The CPU's uniform(): the top 53 bits of one 64-bit draw.
  if (!row.greedy) row.u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  return row;
}

void device_sampling_state::accept(int32_t token) {
  if (auto it = where_.find(token); it != where_.end()) {
    ++counts_[it->second].second;
    return;
  }
  where_.emplace(token, counts_.size());
  counts_.emplace_back(token, 1);
}

void apply_adds(const device_row& row, std::span<float> logits) {
  for (const auto& [token, value] : row.adds) {
    if (token >= 0 && static_cast<size_t>(token) < logits.size()) logits[static_cast<size_t>(token)] += value;
  }
}

}  // namespace moat::cuda
