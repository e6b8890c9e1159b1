// Planning an echo answer at submit, and emitting it step by step on a worker.
#include "echo_job.h"

#include <cstddef>
#include <cstdio>
#include <cstring>

#include "echo_text.h"

namespace moat::echo {
namespace {

std::string_view view(moat_str s) {
  return s.size == 0 ? std::string_view() : std::string_view(s.data, s.size);
}

moat_str to_str(std::string_view s) { return moat_str{s.data(), s.size()}; }

void set_error(moat_error* err, moat_status code, const std::string& message) {
  if (err == nullptr) return;
  err->code = code;
  std::snprintf(err->message, sizeof err->message, "%s", message.c_str());
}

std::string joined_tokens(const moat_prompt& prompt) {
  std::string text;
  for (size_t i = 0; i < prompt.token_count; ++i) {
    if (i != 0) text += ' ';
    text += std::to_string(prompt.tokens[i]);
  }
  return text;
}

std::string prompt_text(const moat_prompt& prompt) {
  return prompt.text.size != 0 || prompt.token_count == 0 ? std::string(view(prompt.text))
                                                          : joined_tokens(prompt);
}

moat_event make_event(moat_event_kind kind, uint32_t index) {
  moat_event event;
  std::memset(&event, 0, sizeof event);
  event.struct_size = sizeof event;
  event.kind = kind;
  event.index = index;
  return event;
}

}  // namespace

std::unique_ptr<echo_job> echo_job::create(const echo_options& options, vocabulary& vocab,
                                           const moat_request& request, moat_event_fn on_event,
                                           void* user_data, moat_error* err,
                                           moat_status& status) {
  status = MOAT_ERR_INVALID_ARGUMENT;
  if (request.struct_size < offsetof(moat_request, stream) ||
      request.sampling.struct_size < offsetof(moat_sampling, logit_bias)) {
    set_error(err, status, "echo: the request struct is older than this backend understands");
    return nullptr;
  }
  if (on_event == nullptr) {
    set_error(err, status, "echo: no event callback");
    return nullptr;
  }
  std::unique_ptr<echo_job> job(new echo_job());
  job->id_ = request.request_id;
  job->kind_ = request.kind;
  job->on_event_ = on_event;
  job->user_data_ = user_data;
  job->fault_ = options.fault;
  job->fault_after_deltas_ = options.fault_after_deltas;
  job->embedding_dim_ = options.embedding_dim;

  const moat_sampling& sampling = request.sampling;
  std::vector<std::string> stops;
  for (size_t i = 0; i < sampling.stop_count; ++i) stops.emplace_back(view(sampling.stop[i]));
  const uint32_t n = sampling.n == 0 ? 1 : sampling.n;
  job->logprobs_ = sampling.logprobs;

  auto context_error = [&](size_t words) {
    status = MOAT_ERR_CONTEXT_LENGTH;
    set_error(err, status,
              "This model's maximum context length is " + std::to_string(options.max_context) +
                  " tokens. However, your prompt has " + std::to_string(words) + " tokens.");
    return nullptr;
  };
  // Words the answer may still use: the request's max_tokens, and never past the context.
  auto budget = [&](size_t prompt_words) -> int64_t {
    const int64_t room = static_cast<int64_t>(options.max_context) -
                         static_cast<int64_t>(prompt_words);
    return sampling.max_tokens < 0 ? room : std::min<int64_t>(sampling.max_tokens, room);
  };

  switch (request.kind) {
    case MOAT_REQUEST_CHAT: {
      if (request.message_count == 0 || request.messages == nullptr) {
        set_error(err, status, "echo: a chat request needs at least one message");
        return nullptr;
      }
      size_t prompt_words = 0;
      std::string_view last_user;
      for (size_t i = 0; i < request.message_count; ++i) {
        const moat_message& m = request.messages[i];
        prompt_words += count_words(view(m.content));
        if (view(m.role) == "user") last_user = view(m.content);
      }
      if (prompt_words > options.max_context) return context_error(prompt_words);
      job->usage_.prompt_tokens = prompt_words;
      job->answers_.resize(1);
      if (options.answer_body) last_user = view(request.body_json);
      job->plan_answer(job->answers_[0], {}, last_user, budget(prompt_words), stops,
                       options.chunk_chars, n, vocab);
      break;
    }
    case MOAT_REQUEST_COMPLETION:
    case MOAT_REQUEST_EMBEDDING: {
      if (request.prompt_count == 0 || request.prompts == nullptr) {
        set_error(err, status, "echo: the request has no prompt");
        return nullptr;
      }
      job->answers_.resize(request.prompt_count);
      for (size_t p = 0; p < request.prompt_count; ++p) {
        const std::string text = prompt_text(request.prompts[p]);
        const size_t words = count_words(text);
        if (words > options.max_context) return context_error(words);
        job->usage_.prompt_tokens += words;
        if (request.kind == MOAT_REQUEST_EMBEDDING) {
          job->answers_[p].text = text;  // embedded on the worker, not here
        } else {
          const std::string_view source = options.answer_body ? view(request.body_json) : std::string_view(text);
          job->plan_answer(job->answers_[p], request.echo ? std::string_view(text) : "", source,
                           budget(words), stops, options.chunk_chars, n, vocab);
        }
      }
      break;
    }
    default:
      status = MOAT_ERR_UNSUPPORTED;
      set_error(err, status, "echo: unknown request kind");
      return nullptr;
  }

  if (request.kind != MOAT_REQUEST_EMBEDDING) {
    // Choice index = prompt_index * n + i, as the ABI defines.
    job->choices_.reserve(job->answers_.size() * n);
    for (size_t p = 0; p < job->answers_.size(); ++p) {
      for (uint32_t i = 0; i < n; ++i) {
        job->choices_.push_back(choice{static_cast<uint32_t>(p * n + i), p, 0, false});
      }
    }
  }
  status = MOAT_OK;
  return job;
}

void echo_job::plan_answer(answer& a, std::string_view echoed, std::string_view source,
                           int64_t max_words, const std::vector<std::string>& stops,
                           uint32_t chunk_chars, uint32_t n, vocabulary& vocab) {
  const cut_result cut = apply_limits(source, max_words, stops);
  const std::string_view generated = source.substr(0, cut.length);
  a.finish = cut.finish;
  a.text.reserve(echoed.size() + generated.size());
  a.text.append(echoed);
  a.text.append(generated);
  const std::string_view text = a.text;
  const size_t words = count_words(text);
  usage_.completion_tokens += (echoed.empty() ? words : count_words(generated)) * n;

  // Tokens: one per piece (a word and its trailing whitespace; leading whitespace joins the
  // first piece), named by the word's id. One pass finds the pieces and their words as
  // split_pieces and piece_word define them, without building either list, and looks the ids
  // up under one lock; words new to the vocabulary are added after it (-1 until then).
  a.pieces.reserve(a.pieces.size() + words + 1);
  a.tokens.reserve(a.tokens.size() + words + 1);
  size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;
  size_t start = 0;
  bool unknown = false;
  {
    const vocabulary::reader ids = vocab.read();
    while (i < text.size()) {
      const size_t word_begin = i;
      while (i < text.size() && !is_space(text[i])) ++i;
      const std::string_view word = text.substr(word_begin, i - word_begin);
      while (i < text.size() && is_space(text[i])) ++i;
      a.pieces.emplace_back(start, i);
      a.tokens.push_back(ids.find(word));
      unknown = unknown || a.tokens.back() < 0;
      start = i;
    }
    if (start < text.size()) {  // whitespace only: one piece with an empty word
      a.pieces.emplace_back(start, text.size());
      a.tokens.push_back(ids.find({}));
      unknown = unknown || a.tokens.back() < 0;
    }
  }
  if (unknown) {
    for (size_t k = 0; k < a.tokens.size(); ++k) {
      if (a.tokens[k] >= 0) continue;
      const auto& [begin, end] = a.pieces[k];
      a.tokens[k] = vocab.id_of(piece_word(text.substr(begin, end - begin)));
    }
  }

  // Deltas: one per piece, or chunks of chunk_chars characters. A token belongs to the delta in
  // which its piece ends, so each token is reported exactly once.
  if (chunk_chars == 0) {
    a.deltas.reserve(a.deltas.size() + a.pieces.size());
    for (size_t k = 0; k < a.pieces.size(); ++k) {
      a.deltas.push_back(delta{a.pieces[k].first, a.pieces[k].second, k, k + 1});
    }
    return;
  }
  const std::vector<size_t> lengths = chunk_lengths(text, chunk_chars);
  size_t offset = 0;
  size_t token = 0;
  a.deltas.reserve(a.deltas.size() + lengths.size());
  for (size_t length : lengths) {
    delta d;
    d.begin = offset;
    d.end = offset + length;
    d.token_begin = token;
    while (token < a.pieces.size() && a.pieces[token].second <= d.end) ++token;
    d.token_end = token;
    a.deltas.push_back(d);
    offset = d.end;
  }
}

bool echo_job::step(bool cancelled, moat_status cancel_code) {
  if (cancelled) {
    emit_error(cancel_code, cancel_code == MOAT_ERR_CANCELLED ? "the request was cancelled"
                                                              : "the backend is shutting down");
    return true;
  }
  if (fault_ == fault_mode::fail_before_first) {
    emit_error(MOAT_ERR_INTERNAL, "echo: injected fault before the first delta");
    return true;
  }
  if (kind_ == MOAT_REQUEST_EMBEDDING) {
    for (size_t i = 0; i < answers_.size(); ++i) {
      const std::vector<float> vector = embed_text(answers_[i].text, embedding_dim_);
      moat_event event = make_event(MOAT_EVENT_EMBEDDING, static_cast<uint32_t>(i));
      event.embedding = vector.data();
      event.embedding_dim = vector.size();
      emit(event);
    }
    emit_done();
    return true;
  }
  bool all_finished = true;
  for (choice& c : choices_) {
    if (c.finished) continue;
    const answer& a = answers_[c.answer];
    if (c.next_delta < a.deltas.size()) {
      if (fault_ == fault_mode::fail_mid_stream && deltas_sent_ >= fault_after_deltas_) {
        emit_error(MOAT_ERR_INTERNAL, "echo: injected fault in the middle of the stream");
        return true;
      }
      emit_delta(c.index, a, a.deltas[c.next_delta++]);
      ++deltas_sent_;
    }
    if (c.next_delta == a.deltas.size()) {
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

void echo_job::emit_delta(uint32_t index, const answer& a, const delta& d) {
  moat_event event = make_event(MOAT_EVENT_DELTA, index);
  event.text = to_str(std::string_view(a.text).substr(d.begin, d.end - d.begin));
  event.tokens = a.tokens.data() + d.token_begin;
  event.token_count = d.token_end - d.token_begin;
  if (logprobs_ >= 0) {
    // Echo is certain of every token: logprob 0, and the only alternative is the token itself.
    const size_t count = event.token_count;
    scratch_tokens_.resize(count);
    scratch_entries_.resize(count);
    for (size_t k = 0; k < count; ++k) {
      const auto [begin, end] = a.pieces[d.token_begin + k];
      scratch_tokens_[k] = moat_token_logprob{a.tokens[d.token_begin + k],
                                              to_str(std::string_view(a.text).substr(begin, end - begin)),
                                              0.0f};
      scratch_entries_[k].chosen = scratch_tokens_[k];
      scratch_entries_[k].top = logprobs_ > 0 ? &scratch_tokens_[k] : nullptr;
      scratch_entries_[k].top_count = logprobs_ > 0 ? 1 : 0;
    }
    event.logprobs = scratch_entries_.data();
    event.logprob_count = count;
  }
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
