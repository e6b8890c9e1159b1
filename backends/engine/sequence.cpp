#include "engine/sequence.h"

#include <cmath>

namespace moat::engine {

sequence::sequence(request_state& owner_state, uint32_t choice_index, uint32_t prompt_idx,
                   int32_t vocab_size)
    : owner(owner_state),
      index(choice_index),
      prompt_index(prompt_idx),
      sampling(owner_state.request.sampling, choice_index, vocab_size),
      stops_(owner_state.request.sampling.stop) {}

const std::vector<int32_t>& sequence::prompt() const {
  return owner.request.prompts[prompt_index];
}

int32_t sequence::token_at(int32_t p) const {
  const auto& pr = prompt();
  const auto n = static_cast<int32_t>(pr.size());
  return p < n ? pr[static_cast<size_t>(p)] : outputs_[static_cast<size_t>(p - n)];
}

void sequence::prepare_recompute() {
  if (outputs_.empty()) {
    recompute_.clear();
    return;
  }
  recompute_ = prompt();
  recompute_.insert(recompute_.end(), outputs_.begin(), outputs_.end());
}

void sequence::start(const text_codec& codec) {
  const auto& req = owner.request;
  if (req.embedding) return;
  decoder_ = codec.make_decoder(prompt_index < req.continuation.size() && req.continuation[prompt_index]);
  if (prompt_index < req.echo_text.size() && !req.echo_text[prompt_index].empty())
    req.sink->on_delta(index, req.echo_text[prompt_index], {}, {});
}

bool sequence::on_token(const sample_result& sampled, int32_t max_ctx, const text_codec& codec) {
  ++generated;
  ++owner.usage.completion_tokens;
  sampling.accept(sampled.token);
  next_token = sampled.token;
  outputs_.push_back(sampled.token);

  if (codec.is_end_of_generation(sampled.token)) {
    // The end-of-generation token counts in usage but adds no text, tokens or logprobs.
    finish(finish_reason::stop);
    return true;
  }

  pending_tokens_.push_back(sampled.token);
  if (owner.request.sampling.logprobs >= 0)
    pending_logprobs_.push_back({{sampled.token, sampled.logprob}, sampled.top});
  auto released = stops_.push(decoder_->push(sampled.token));
  if (released.stopped) {
    emit(std::move(released.text), true);
    finish(finish_reason::stop);
    return true;
  }
  if (!released.text.empty()) emit(std::move(released.text), false);

  const int32_t max_tokens = owner.request.sampling.max_tokens;
  const bool hit_max_tokens = max_tokens >= 0 && generated >= max_tokens;
  // Prompt plus answer never exceed the context (as vLLM counts max_model_len).
  const bool hit_context = static_cast<int64_t>(prompt().size()) + generated >= max_ctx;
  if (hit_max_tokens || hit_context) {
    finish(finish_reason::length);
    return true;
  }
  return false;
}

void sequence::finish(finish_reason reason) {
  if (phase == sequence_phase::done) return;
  if (reason != finish_reason::stop || !stops_.stopped()) {
    // Not cut by a stop string: whatever the decoder and the matcher still hold is answer text.
    std::string tail = decoder_ ? decoder_->finish() : std::string();
    auto released = stops_.push(tail);
    std::string text = std::move(released.text);
    if (released.stopped) reason = finish_reason::stop;
    else text += stops_.flush();
    emit(std::move(text), true);
  }
  phase = sequence_phase::done;
  owner.request.sink->on_finish(index, reason);
}

void sequence::emit(std::string text, bool final_delta) {
  // Tokens whose text vanished into a stop string are not reported (their text is never shown);
  // on any other final delta they go out even with no text, so logprobs cover every shown token.
  if (text.empty() && (!final_delta || stops_.stopped() || pending_tokens_.empty())) {
    if (final_delta) {
      pending_tokens_.clear();
      pending_logprobs_.clear();
    }
    return;
  }
  owner.request.sink->on_delta(index, text, pending_tokens_, pending_logprobs_);
  pending_tokens_.clear();
  pending_logprobs_.clear();
}

void sequence::pool(std::span<const float> row) {
  if (pooled_.empty()) pooled_.assign(row.size(), 0.0);
  for (size_t i = 0; i < row.size(); ++i) pooled_[i] += row[i];
  ++pooled_rows_;
}

void sequence::emit_embedding() {
  auto v = mean_pool_normalize(pooled_, pooled_rows_);
  owner.request.sink->on_embedding(index, v);
  phase = sequence_phase::done;
}

std::vector<float> mean_pool_normalize(std::span<const double> sum, int32_t rows) {
  std::vector<float> out(sum.size(), 0.0f);
  if (rows <= 0) return out;
  double norm = 0.0;
  for (double v : sum) norm += (v / rows) * (v / rows);
  norm = std::sqrt(norm);
  if (norm == 0.0) return out;
  for (size_t i = 0; i < sum.size(); ++i) out[i] = static_cast<float>(sum[i] / rows / norm);
  return out;
}

}  // namespace moat::engine
