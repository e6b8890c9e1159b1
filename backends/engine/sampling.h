// moat/engine/sampling.h — turns one position's logits into the next token, per sequence.
//
//   moat::engine::sampling_params p;
//   p.temperature = 0.7f; p.top_p = 0.9f; p.seed = 42; p.logprobs = 3;
//   moat::engine::sampler s(p, /*stream=*/choice_index, vocab_size);
//   std::vector<float> logits = ...;          // [vocab], the model's last-position output
//   sample_result r = s.sample(logits);       // logits are modified in place
//   s.accept(r.token);                        // feeds the presence/frequency penalties
//
// The order of operations follows vLLM's sampler, so that a client moving between the two sees
// the same meaning for every knob:
//   1. logprobs (when asked) are the log-softmax of the RAW model logits, before bias, penalties
//      and temperature (vLLM V1's default `raw_logprobs` mode);
//   2. logit_bias is added;
//   3. presence/frequency penalties (OpenAI definition, over the generated tokens only):
//        logit[t] -= frequency_penalty * count[t] + presence_penalty * (count[t] > 0);
//   4. temperature 0 (or below 1e-5) is greedy: argmax, ties broken towards the lowest id;
//   5. otherwise logits / temperature → softmax, then the min_p, top_k masks (both keep a prefix
//      of the tokens sorted by probability, so they commute) and top_p over what is left
//      (renormalized), then one draw from the per-sequence generator.
//
// Reproducibility: each sequence owns its generator, seeded from (seed, stream) where stream is
// the choice index, so the tokens of one choice never depend on what else is in the batch.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moat::engine {

struct sampling_params {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;        // 1 = off
  int32_t top_k = 0;         // <= 0 = off
  float min_p = 0.0f;        // 0 = off
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0;         // always meaningful here: the backend picks one when the client gave none
  int32_t max_tokens = -1;   // -1: until the context is full
  uint32_t n = 1;            // choices per prompt
  int32_t logprobs = -1;     // -1: none; otherwise the number of top alternatives (0..20)
  std::vector<std::string> stop;
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token, bias); ids checked by the caller
};

struct token_logprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct sample_result {
  int32_t token = 0;
  float logprob = 0.0f;              // raw log-probability of `token` (only when logprobs >= 0)
  std::vector<token_logprob> top;    // the `logprobs` most likely tokens, most likely first
};

// Mixes a 64-bit value (splitmix64's finalizer); used to derive independent per-choice seeds.
uint64_t mix_seed(uint64_t x);

class sampler {
 public:
  // stream: the choice index; two choices of one request with one seed draw different tokens.
  sampler(const sampling_params& params, uint64_t stream, int32_t vocab_size);

  // logits: [vocab_size]; modified in place (bias, penalties, temperature).
  sample_result sample(std::span<float> logits);

  // Records a generated token for the penalties.
  void accept(int32_t token);

  const sampling_params& params() const { return params_; }

 private:
  // A double in [0, 1) from the generator, defined bit for bit (std distributions are not).
  double uniform();
  int32_t draw(std::span<const float> logits);

  sampling_params params_;
  int32_t vocab_size_;
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int32_t> counts_;  // generated token → occurrences
  std::vector<int32_t> order_;                   // scratch: token ids sorted by probability
  std::vector<float> probs_;                     // scratch: [vocab]
};

// Log-softmax of logits into out (both [n]); computed in double for the normalizer.
void log_softmax(std::span<const float> logits, std::span<float> out);

// The k largest entries of values, largest first, ties towards the lowest id.
std::vector<token_logprob> top_entries(std::span<const float> values, int32_t k);

// argmax with ties broken towards the lowest id.
int32_t argmax(std::span<const float> logits);

}  // namespace moat::engine
