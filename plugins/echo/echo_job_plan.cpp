// The worker side of an echo job: planning the answer at the first step, then emitting it.
#include <algorithm>
#include <cstring>

#include "echo_job.h"
#include "echo_text.h"

namespace moat::echo {
namespace {

moat_str to_str(std::string_view s) {
  return moat_str{s.data(), s.size()};
}

moat_event make_event(moat_event_kind kind, uint32_t index) {
  moat_event event;
  std::memset(&event, 0, sizeof event);
  event.struct_size = sizeof event;
  event.kind = kind;
  event.index = index;
  return event;
}

// Past these a plan's buffers are dropped at trim rather than kept for the next job: what a
// worker keeps between jobs stays under ~0.2 MB (per answer: 16 KiB of joined text, 2048 piece
// ends of 8 bytes and ids of 4; four answers).
constexpr size_t kept_text_bytes = size_t{16} << 10;
constexpr size_t kept_tokens = 2048;
constexpr size_t kept_answers = 4;
constexpr size_t kept_choices = 64;

}  // namespace

void echo_plan::reset(size_t count) {
  if (answers.size() < count) answers.resize(count);
  for (size_t k = 0; k < count; ++k) {
    answer& a = answers[k];
    a.text = {};
    a.joined.clear();
    a.pieces = 0;
    a.finish = MOAT_FINISH_STOP;
  }
  answer_count = count;
  choices.clear();
}

void echo_plan::trim() {
  if (answers.size() > kept_answers) answers.resize(kept_answers);
  for (answer& a : answers) {
    if (a.joined.capacity() > kept_text_bytes || a.ends.capacity() > kept_tokens ||
        a.tokens.capacity() > kept_tokens) {
      a = answer{};
    }
  }
  if (choices.capacity() > kept_choices) choices = {};
  if (scratch_tokens.capacity() > kept_tokens) {
    scratch_tokens = {};
    scratch_entries = {};
  }
}

int64_t echo_job::word_budget(size_t prompt_words) const {
  // Words the answer may still use: the request's max_tokens, and never past the context.
  const int64_t room =
      static_cast<int64_t>(options_->max_context) - static_cast<int64_t>(prompt_words);
  return max_tokens_ < 0 ? room : std::min<int64_t>(max_tokens_, room);
}

void echo_job::make_plan() {
  echo_plan& p = *plan_;
  const echo_options& options = *options_;
  switch (kind_) {
    case MOAT_REQUEST_CHAT: {
      // A chat is answered with its last user message (or the body); its prompt is all messages.
      p.reset(1);
      if (options.answer_body || last_user_ == text_count_) {
        size_t prompt_words = 0;
        for (size_t i = 0; i < text_count_; ++i) prompt_words += count_words(texts_[i]);
        usage_.prompt_tokens = prompt_words;
        plan_answer(p.answers[0], {}, options.answer_body ? body_ : std::string_view(),
                    word_budget(prompt_words));
        break;
      }
      size_t other_words = 0;
      for (size_t i = 0; i < text_count_; ++i) {
        if (i != last_user_) other_words += count_words(texts_[i]);
      }
      usage_.prompt_tokens =
          other_words + plan_prompt_answer(p.answers[0], texts_[last_user_], other_words);
      break;
    }
    case MOAT_REQUEST_COMPLETION: {
      p.reset(text_count_);
      for (size_t i = 0; i < text_count_; ++i) {
        const std::string_view text = texts_[i];
        if (!echo_ && !options.answer_body) {
          usage_.prompt_tokens += plan_prompt_answer(p.answers[i], text, 0);
          continue;
        }
        const size_t words = count_words(text);
        usage_.prompt_tokens += words;
        plan_answer(p.answers[i], echo_ ? text : std::string_view(),
                    options.answer_body ? body_ : text, word_budget(words));
      }
      break;
    }
    default: {  // embedding: the vectors are made as they are sent
      p.reset(0);
      for (size_t i = 0; i < text_count_; ++i) usage_.prompt_tokens += count_words(texts_[i]);
      break;
    }
  }
  if (kind_ != MOAT_REQUEST_EMBEDDING) {
    // Choice index = prompt_index * n + i, as the ABI defines.
    p.choices.reserve(p.answer_count * n_);
    for (size_t a = 0; a < p.answer_count; ++a) {
      for (uint32_t i = 0; i < n_; ++i) {
        p.choices.push_back(echo_plan::choice{static_cast<uint32_t>(a * n_ + i), false, a, 0, 0});
      }
    }
  }
  planned_ = true;
}

size_t echo_job::plan_prompt_answer(echo_plan::answer& a, std::string_view prompt,
                                    size_t other_words) {
  // The budget depends on the prompt's words, but only matters when the prompt has more bytes
  // than the budget: with the budget the prompt's bytes would leave (a lower bound), a prompt
  // that fits is planned at once and its words come from that pass, unless a stop string cut
  // the answer short.
  const int64_t at_least = word_budget(other_words + prompt.size());
  if (at_least >= 0 && prompt.size() <= static_cast<uint64_t>(at_least)) {
    const size_t words = plan_answer(a, {}, prompt, at_least);
    return a.text.size() == prompt.size() ? words : count_words(prompt);
  }
  const size_t words = count_words(prompt);
  plan_answer(a, {}, prompt, word_budget(other_words + words));
  return words;
}

size_t echo_job::plan_answer(echo_plan::answer& a, std::string_view echoed, std::string_view source,
                             int64_t max_words) {
  const cut_result cut =
      apply_limits(source, max_words, std::span<const std::string_view>(stops_, stop_count_));
  const std::string_view generated = source.substr(0, cut.length);
  a.finish = cut.finish;
  if (echoed.empty()) {
    a.text = generated;  // the job's own bytes, which outlive its plan: no copy
  } else {
    a.joined.reserve(echoed.size() + generated.size());
    a.joined.append(echoed);
    a.joined.append(generated);
    a.text = a.joined;
  }
  const std::string_view text = a.text;

  // Tokens: one per piece (a word and its trailing whitespace; leading whitespace joins the
  // first piece), named by the word's id: piece k ends where word k + 1 begins. One pass over
  // the words (for_each_word, a block of bytes at a time) looks the ids up under one lock;
  // words new to the vocabulary are added after it (-1 until then). The ends and ids are
  // written by index into room made first: a piece has at least one byte, and each but the
  // last a space after its word, so there are at most size / 2 + 1.
  const size_t most = text.size() / 2 + 1;
  if (a.ends.size() < most) {
    a.ends.resize(most);
    a.tokens.resize(most);
  }
  size_t* const ends = a.ends.data();
  int32_t* const tokens = a.tokens.data();
  size_t words = 0;
  bool unknown = false;
  {
    const vocabulary::reader ids = vocab_->read();
    for_each_word(text, [&](size_t begin, size_t end) {
      if (words != 0) ends[words - 1] = begin;
      const int32_t id = ids.find(std::string_view(text.data() + begin, end - begin));
      tokens[words] = id;
      unknown = unknown || id < 0;
      ++words;
    });
    a.pieces = words;
    if (words != 0) {
      ends[words - 1] = text.size();
    } else if (!text.empty()) {  // whitespace only: one piece with an empty word
      ends[0] = text.size();
      tokens[0] = ids.find({});
      unknown = unknown || tokens[0] < 0;
      a.pieces = 1;
    }
  }
  if (unknown) {
    for (size_t k = 0; k < a.pieces; ++k) {
      if (a.tokens[k] >= 0) continue;
      const size_t begin = a.piece_begin(k);
      a.tokens[k] = vocab_->id_of(piece_word(text.substr(begin, a.ends[k] - begin)));
    }
  }
  usage_.completion_tokens += (echoed.empty() ? words : count_words(generated)) * n_;
  return words;
}

bool echo_job::begin_step(bool cancelled, moat_status cancel_code) {
  if (cancelled) {
    emit_error(cancel_code, cancel_code == MOAT_ERR_CANCELLED ? "the request was cancelled"
                                                              : "the backend is shutting down");
    return true;
  }
  if (options_->fault == fault_mode::fail_before_first) {
    emit_error(MOAT_ERR_INTERNAL, "echo: injected fault before the first delta");
    return true;
  }
  if (!planned_) {
    if (plan_ == nullptr) {
      own_plan_ = std::make_unique<echo_plan>();
      plan_ = own_plan_.get();
    }
    make_plan();
  }
  if (kind_ == MOAT_REQUEST_EMBEDDING) {
    for (size_t i = 0; i < text_count_; ++i) {
      const std::vector<float> vector = embed_text(texts_[i], options_->embedding_dim);
      moat_event event = make_event(MOAT_EVENT_EMBEDDING, static_cast<uint32_t>(i));
      event.embedding = vector.data();
      event.embedding_dim = vector.size();
      emit(event);
    }
    emit_done();
    return true;
  }
  return false;
}

bool echo_job::step(bool cancelled, moat_status cancel_code) {
  if (begin_step(cancelled, cancel_code)) return true;
  moat_event delta = make_event(MOAT_EVENT_DELTA, 0);
  return emit_round(delta);
}

void echo_job::run(bool stop, moat_status stop_code) {
  if (begin_step(stop, stop_code)) return;
  moat_event delta = make_event(MOAT_EVENT_DELTA, 0);
  if (plan_->choices.size() == 1 && !whole_ && options_->chunk_chars == 0 && logprobs_ < 0 &&
      options_->fault == fault_mode::none) {
    return run_words(delta);
  }
  while (!emit_round(delta)) {
  }
}

void echo_job::run_words(moat_event& delta) {
  echo_plan::choice& c = plan_->choices[0];
  if (!c.finished) {
    // emit_round and emit_delta for this one case: a delta per piece (its bytes up to the
    // piece's end, its one token), then FINISH.
    const echo_plan::answer& a = plan_->answers[c.answer];
    delta.index = c.index;
    size_t sent = c.sent;
    size_t piece = c.tokens;
    delta.token_count = 1;
    while (sent < a.text.size()) {
      const size_t end = a.ends[piece];
      delta.text = moat_str{a.text.data() + sent, end - sent};
      delta.tokens = a.tokens.data() + piece;
      emit(delta);
      sent = end;
      ++piece;
    }
    deltas_sent_ += static_cast<uint32_t>(piece - c.tokens);
    c.sent = sent;
    c.tokens = piece;
    emit_finish(c.index, a.finish);
    c.finished = true;
  }
  emit_done();
}

bool echo_job::emit_round(moat_event& delta) {
  bool all_finished = true;
  for (echo_plan::choice& c : plan_->choices) {
    if (c.finished) continue;
    const echo_plan::answer& a = plan_->answers[c.answer];
    if (c.sent < a.text.size()) {
      if (options_->fault == fault_mode::fail_mid_stream &&
          deltas_sent_ >= options_->fault_after_deltas) {
        emit_error(MOAT_ERR_INTERNAL, "echo: injected fault in the middle of the stream");
        return true;
      }
      emit_delta(delta, c, a);
      ++deltas_sent_;
    }
    if (c.sent == a.text.size()) {
      emit_finish(c.index, a.finish);
      c.finished = true;
    } else {
      all_finished = false;
    }
  }
  if (!all_finished) return false;
  emit_done();
  return true;
}

void echo_job::emit_delta(moat_event& event, echo_plan::choice& c, const echo_plan::answer& a) {
  // The delta's bytes [c.sent, end) and its tokens [c.tokens, token_end): a token belongs to
  // the delta in which its piece ends, so each token is reported exactly once.
  size_t end = a.text.size();
  size_t token_end = a.pieces;
  if (!whole_) {
    const uint32_t chunk_chars = options_->chunk_chars;
    if (chunk_chars == 0) {
      end = a.ends[c.tokens];
      token_end = c.tokens + 1;
    } else {
      end = c.sent + chunk_length(a.text.substr(c.sent), chunk_chars);
      token_end = c.tokens;
      while (token_end < a.pieces && a.ends[token_end] <= end) ++token_end;
    }
  }
  // Only the fields a delta sets change from one delta to the next (see make_event).
  event.index = c.index;
  event.text = moat_str{a.text.data() + c.sent, end - c.sent};
  event.tokens = a.tokens.data() + c.tokens;
  event.token_count = token_end - c.tokens;
  if (logprobs_ >= 0) {
    // Echo is certain of every token: logprob 0, and the only alternative is the token itself.
    const size_t count = event.token_count;
    std::vector<moat_token_logprob>& tokens = plan_->scratch_tokens;
    std::vector<moat_logprob_entry>& entries = plan_->scratch_entries;
    tokens.resize(count);
    entries.resize(count);
    for (size_t k = 0; k < count; ++k) {
      const size_t piece = c.tokens + k;
      const size_t begin = a.piece_begin(piece);
      tokens[k] = moat_token_logprob{a.tokens[piece],
                                     to_str(a.text.substr(begin, a.ends[piece] - begin)), 0.0f};
      entries[k].chosen = tokens[k];
      entries[k].top = logprobs_ > 0 ? &tokens[k] : nullptr;
      entries[k].top_count = logprobs_ > 0 ? 1 : 0;
    }
    event.logprobs = entries.data();
    event.logprob_count = count;
  }
  c.sent = end;
  c.tokens = token_end;
  emit(event);
}

void echo_job::emit_finish(uint32_t index, moat_finish_reason reason) const {
  moat_event event = make_event(MOAT_EVENT_FINISH, index);
  event.finish_reason = reason;
  emit(event);
}

void echo_job::emit_error(moat_status code, std::string_view message) const {
  moat_event event = make_event(MOAT_EVENT_ERROR, 0);
  event.error_code = code;
  event.error_message = to_str(message);
  emit(event);
}

void echo_job::emit_done() const {
  moat_event event = make_event(MOAT_EVENT_DONE, 0);
  event.usage = usage_;
  emit(event);
}

}  // namespace moat::echo
