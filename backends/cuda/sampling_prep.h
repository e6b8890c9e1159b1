// Host side of device sampling: per sequence, what the device sampler needs for the next token
// so that it draws what engine::sampler (backends/engine/sampling.h) would on the CPU with the
// same request: the logit adjustments (logit_bias, then presence/frequency penalties over the
// tokens generated so far, applied as the CPU applies them), the knobs normalized, and the one
// uniform number from the sequence's own generator, seeded from (seed, choice index) exactly
// as the CPU sampler seeds it and drawn only when the CPU would draw (never for greedy).
// The device then applies the adds (kernels::apply_logit_adds) and samples with
// kernels::sample_ordered, whose semantics kernels::reference::sample_ordered specifies.
//
//   device_sampling_state s(params, /*stream=*/choice_index, vocab);
//   device_row row = s.next();           // adds, knobs, u
//   apply_adds(row, logits_row);          // the host version of kernels::apply_logit_adds
//   ... sample ..., then s.accept(token);
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/sampling.h"
#include "kernels/formats.h"

namespace moat::cuda {

struct device_row {
  kernels::sampling_params knobs;  // temperature (0 when greedy), top_k, top_p, min_p
  bool greedy = false;
  double u = 0.0;                  // in [0, 1); meaningful when !greedy
  // logits[token] += value, applied in this order (biases, then each penalty as a negative add,
  // which is exact: a - b == a + (-b) in IEEE arithmetic).
  std::vector<std::pair<int32_t, float>> adds;
};

class device_sampling_state {
 public:
  device_sampling_state(const engine::sampling_params& params, uint64_t stream, int32_t vocab_size);

  // What the next sampling step of this sequence needs. Consumes one number from the generator
  // unless the step is greedy (as engine::sampler::sample does).
  device_row next();

  // Records the token the step produced (feeds the penalties).
  void accept(int32_t token);

 private:
  engine::sampling_params params_;
  int32_t vocab_size_;
  std::mt19937_64 rng_;
  std::vector<std::pair<int32_t, int32_t>> counts_;  // token -> occurrences, first-seen order
  std::unordered_map<int32_t, size_t> where_;        // token -> index in counts_
};

// logits[token] += value for every add in order (tokens outside the row are skipped).
void apply_adds(const device_row& row, std::span<float> logits);

}  // namespace moat::cuda
