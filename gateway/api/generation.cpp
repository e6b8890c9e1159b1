#include "api/generation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "api/errors.h"
#include "api/request_trail.h"
#include "host/plugin.h"
#include "policy/policy.h"

namespace moat::api {

const char* finish_reason_text(moat_finish_reason reason) {
  switch (reason) {
    case MOAT_FINISH_LENGTH: return "length";
    case MOAT_FINISH_CONTENT_FILTER: return "content_filter";
    default: return "stop";
  }
}

namespace {

// The bytes a stream's pending buffer starts with on this thread: see make_room.
thread_local size_t first_pull_hint = 1024;

// The records of `count` choices: the job's own `first` for the usual single choice (no
// allocation of its own), else `more`, sized for them.
template <class T>
std::span<T> one_or_more(T& first, std::vector<T>& more, uint32_t count) {
  if (count == 1) return {&first, 1};
  more.resize(count);
  return more;
}

}  // namespace

generation_job::generation_job(generation_options options, http::responder respond,
                               metrics::registry& metrics)
    : options_(std::move(options)), respond_(std::move(respond)), metrics_(metrics) {
  keep_identity();
  if (options_.choices == 0) options_.choices = 1;
  if (options_.stream) {
    framing_ = openai::chunk_framing(options_.meta, options_.chat, options_.include_usage);
    streams_ = one_or_more(first_stream_, more_streams_, options_.choices);
  } else {
    results_ = one_or_more(first_result_, more_results_, options_.choices);
    for (uint32_t i = 0; i < options_.choices; ++i) results_[i].index = i;
  }
  if (options_.stream && options_.trail && options_.trail->filters_responses()) {
    filters_.resize(options_.choices);
    logprobs_off_.assign(options_.choices, false);
    for (auto& f : filters_) f = options_.trail->policies()->response_filter_for(options_.trail->policy);
  }
  plain_deltas_ = options_.stream && !options_.logprobs && filters_.empty();
}

void generation_job::keep_identity() {
  auto& meta = options_.meta;
  const size_t total = meta.id.size() + meta.model.size() + meta.system_fingerprint.size() +
                       options_.request_id.size();
  char* at = identity_;
  if (total > sizeof identity_) {
    identity_spill_ = std::make_unique_for_overwrite<char[]>(total);
    at = identity_spill_.get();
  }
  auto keep = [&at](std::string_view& text) {
    if (text.empty()) return;  // an empty view's data() may be null
    std::memcpy(at, text.data(), text.size());
    text = std::string_view(at, text.size());
    at += text.size();
  };
  keep(meta.id);
  keep(meta.model);
  keep(meta.system_fingerprint);
  keep(options_.request_id);
}

generation_job::~generation_job() {
  if (!options_.trail) return;
  for (const auto& f : filters_) {
    if (!f) continue;  // finished: its text is already in audit_answer_
    if (!audit_answer_.empty()) audit_answer_ += '\n';
    audit_answer_ += f->audit_text();
  }
  options_.trail->set_response_payload(std::move(audit_answer_));
}

void generation_job::reject(const openai::api_error& error) {
  responded_ = true;
  ended_ = true;
  if (auto respond = std::move(respond_)) respond(error_response(metrics_, error, options_.route));
}

void generation_job::on_event(host::owned_event&& event) {
  // The usual event of a stream first, with no dispatch: more text of choice 0 while the client
  // keeps up, a plain chunk (see emit_delta).
  if (event.kind == MOAT_EVENT_DELTA && plain_deltas_ && !dirty_ && !ended_ &&
      serialized_.size() < coalesce_after_bytes && append_plain_delta(event)) {
    return flush();
  }
  if (ended_) return;
  // An index the request cannot have is a plugin bug; it must not grow our memory.
  if ((event.kind == MOAT_EVENT_DELTA || event.kind == MOAT_EVENT_FINISH) && event.index >= options_.choices) {
    spdlog::warn("[{}] backend sent choice index {} of {}; ignored", options_.request_id, event.index,
                 options_.choices);
    return;
  }
  switch (event.kind) {
    case MOAT_EVENT_DELTA: on_delta(event); break;
    case MOAT_EVENT_FINISH: on_finish(event); break;
    case MOAT_EVENT_DONE: on_done(event); break;
    case MOAT_EVENT_ERROR: on_error(event); break;
    default: break;  // embeddings do not belong here
  }
}

void generation_job::on_delta(host::owned_event& event) {
  if (!options_.stream) {
    auto& r = results_[event.index];
    // The host joins a whole answer's deltas per choice, so the first usually carries all of
    // it: taken over, not copied. Later ones (past the host's lazy cap) are appended, with one
    // reservation up front instead of a reallocation every time the text doubles.
    if (r.text.empty()) {
      r.text = std::move(event.text);
    } else {
      if (r.text.capacity() < 256)
        r.text.reserve(std::max<size_t>(256, r.text.size() + event.text.size()));
      r.text += event.text;
    }
    if (options_.logprobs) {
      r.has_logprobs = true;
      for (auto& lp : event.logprobs) r.logprobs.push_back(std::move(lp));
    }
    return;
  }
  if (!filters_.empty()) {
    auto& f = filters_[event.index];
    if (!f) return;  // the choice already finished: nothing may follow its tail
    std::string out = f->push(event.text);
    if (f->blocked()) return end_blocked();
    // Logprobs carry the tokens as the backend wrote them: once the filter changed or held back
    // text of this choice they could show what it removed, so none follow from then on.
    if (out != event.text) logprobs_off_[event.index] = true;
    if (logprobs_off_[event.index]) event.logprobs.clear();
    event.text = std::move(out);
    // Held back whole (a possible match is still open): no empty delta for it.
    if (event.text.empty() && event.logprobs.empty()) return;
  }
  emit_delta(event);
}

bool generation_job::append_plain_delta(const host::owned_event& event) {
  // The usual event: more text of choice 0 without logprobs, a chunk whose every byte but the
  // text is the same for the whole stream. It goes straight to the framing (no chunk_delta; no
  // text_offset to keep, which only logprobs show). Chat names the role in a choice's first
  // chunk, so that one takes the general path.
  choice_stream& s = streams_[0];
  if (event.index != 0 || options_.logprobs || event.text.empty() || !(s.started || !options_.chat))
    return false;
  s.started = true;
  make_room(serialized_, event.text.size());
  framing_.append_plain(serialized_, event.text);
  return true;
}

void generation_job::emit_delta(host::owned_event& event) {
  // Streamed. While the client keeps up, each event becomes its own chunk, as the backend cut
  // it. Once more than coalesce_after_bytes of chunks wait unsent, later text is coalesced per
  // choice until the next pull: a slow reader gets fewer, longer deltas instead of a growing
  // queue of ~200-byte JSON envelopes around single tokens.
  if (!dirty_ && serialized_.size() < coalesce_after_bytes) {
    if (append_plain_delta(event)) return flush();
    openai::chunk_delta d;
    d.index = event.index;
    d.first = !streams_[event.index].started;
    streams_[event.index].started = true;
    d.text = event.text;
    d.has_logprobs = options_.logprobs;
    d.logprobs = event.logprobs;
    d.text_offset = advance_offset(event.index, d.text.size());
    append_chunk(serialized_, d);
    return flush();
  }
  auto& p = streams_[event.index];
  p.text += event.text;
  p.has_delta = true;
  dirty_ = true;
  pending_bytes_ += event.text.size();
  if (options_.logprobs) {
    for (auto& lp : event.logprobs) {
      pending_bytes_ += lp.chosen.token.size() + 16;
      p.logprobs.push_back(std::move(lp));
    }
  }
  if (pending_bytes_ > max_pending_bytes && !overflowed_) {
    // Even coalesced, the client is far behind: stop the backend instead of buffering more.
    overflowed_ = true;
    if (auto c = call_.lock()) c->cancel();
  }
  flush();
}

void generation_job::finish_filter(uint32_t index) {
  auto f = std::move(filters_[index]);
  if (!f) return;
  host::owned_event tail;
  tail.kind = MOAT_EVENT_DELTA;
  tail.index = index;
  tail.text = f->finish();
  if (f->blocked()) return end_blocked();
  if (!tail.text.empty()) emit_delta(tail);
  const auto d = f->complete();  // on_response hooks: tags and decisions for the audit line
  options_.trail->record(d);
  if (!audit_answer_.empty()) audit_answer_ += '\n';
  audit_answer_ += f->audit_text();
}

void generation_job::end_blocked() {
  if (ended_) return;
  // Whatever was released before the match is out; the rest of the answer is not sent.
  policy::decision d;
  d.outcome = policy::verdict::block;
  d.reason = "the answer matched a response rule";
  const auto error = policy_error(d);
  options_.trail->set_status(error.status);
  metrics_.error(error.type);
  if (auto c = call_.lock()) c->cancel();
  for (auto& f : filters_) {
    if (!f) continue;
    if (!audit_answer_.empty()) audit_answer_ += '\n';
    audit_answer_ += f->audit_text();
    f.reset();
  }
  tail_ = openai::sse_error(error);
  tail_ += openai::sse_done;
  ended_ = true;
  flush();
}

bool generation_job::filter_whole_answers() {
  if (!options_.trail) return true;
  if (!options_.trail->filters_responses()) {
    for (const auto& r : results_) {
      if (!audit_answer_.empty()) audit_answer_ += '\n';
      audit_answer_ += r.text;
    }
    return true;
  }
  const auto& set = *options_.trail->policies();
  for (auto& r : results_) {
    std::string audit_text;
    const std::string before = r.has_logprobs ? r.text : std::string();
    const auto d = set.filter_response(options_.trail->policy, r.text, &audit_text);
    if (r.has_logprobs && r.text != before) {
      // The tokens' text would show what the policies removed.
      r.has_logprobs = false;
      r.logprobs.clear();
    }
    options_.trail->record(d);
    if (!audit_answer_.empty()) audit_answer_ += '\n';
    audit_answer_ += audit_text;
    if (d.outcome != policy::verdict::allow) {
      if (d.outcome == policy::verdict::fail) spdlog::error("[{}] response policy failed: {}", options_.request_id, d.reason);
      responded_ = true;
      ended_ = true;
      if (auto respond = std::move(respond_)) respond(error_response(metrics_, policy_error(d), options_.route));
      return false;
    }
  }
  return true;
}

void generation_job::on_finish(const host::owned_event& event) {
  if (!options_.stream) {
    results_[event.index].finish_reason = finish_reason_text(event.finish_reason);
    return;
  }
  if (!filters_.empty()) {
    finish_filter(event.index);
    if (ended_) return;
  }
  if (!dirty_ && serialized_.size() < coalesce_after_bytes) {
    openai::chunk_delta d;
    d.index = event.index;
    d.first = !streams_[event.index].started;
    d.finish_reason = finish_reason_text(event.finish_reason);
    streams_[event.index].started = true;
    streams_[event.index].closed = true;
    append_chunk(serialized_, d);
    return flush();
  }
  streams_[event.index].finish = finish_reason_text(event.finish_reason);
  dirty_ = true;
  flush();
}

void generation_job::on_done(const host::owned_event& event) {
  const openai::usage_counts usage{event.usage.prompt_tokens, event.usage.completion_tokens};
  tokens_used_ = static_cast<uint64_t>(event.usage.prompt_tokens) + event.usage.completion_tokens;
  if (options_.trail) {
    options_.trail->set_tokens(static_cast<int64_t>(event.usage.prompt_tokens),
                               static_cast<int64_t>(event.usage.completion_tokens));
  }
  if (!options_.stream) {
    for (auto& r : results_) {
      if (r.finish_reason.empty()) r.finish_reason = "stop";
    }
    if (!filter_whole_answers()) return;
    http::response res;
    res.route = options_.route;
    res.body = options_.chat ? openai::chat_completion_json(options_.meta, results_, usage)
                             : openai::completion_json(options_.meta, results_, usage);
    responded_ = true;
    ended_ = true;
    if (auto respond = std::move(respond_)) respond(std::move(res));
    return;
  }
  // A choice the backend never finished explicitly still gets its held-back tail and its
  // closing chunk.
  for (uint32_t i = 0; i < filters_.size(); ++i) {
    finish_filter(i);
    if (ended_) return;
  }
  for (uint32_t i = 0; i < options_.choices; ++i) {
    if (!streams_[i].closed && streams_[i].finish.empty()) streams_[i].finish = "stop";
  }
  tail_.clear();
  if (options_.include_usage) {
    tail_ += openai::sse_data(options_.chat ? openai::chat_usage_chunk_json(options_.meta, usage)
                                            : openai::completion_usage_chunk_json(options_.meta, usage));
  }
  tail_ += openai::sse_done;
  ended_ = true;
  flush();
}

void generation_job::on_error(const host::owned_event& event) {
  const auto error = backend_error(event.error_code, event.error_message);
  if (options_.trail) options_.trail->set_status(error.status);
  // A cancel is what we asked for (the client left); anything else is worth a warning.
  spdlog::log(event.error_code == MOAT_ERR_CANCELLED && !overflowed_ ? spdlog::level::debug : spdlog::level::warn,
              "[{}] model '{}': backend error {} ({}): {}", options_.request_id, options_.meta.model, error.status,
              host::status_name(event.error_code), event.error_message);
  if (!responded_) {
    // Nothing sent yet: a real HTTP error status, streaming or not.
    responded_ = true;
    ended_ = true;
    if (auto respond = std::move(respond_)) respond(error_response(metrics_, error, options_.route));
    return;
  }
  metrics_.error(error.type);
  // The text that made it before the failure still goes out, then the error, then [DONE].
  tail_ = openai::sse_error(error);
  tail_ += openai::sse_done;
  ended_ = true;
  flush();
}

// What piled up since the last pull: the chunks serialized as they came, then per choice one
// delta chunk with its coalesced text and its closing chunk, then the tail (usage, error,
// [DONE]) once the request ended.
std::string generation_job::take_pending() {
  if (!pulled_) {
    // With a quarter more, so that an answer a little longer than the last still fits.
    pulled_ = true;
    const size_t bytes = serialized_.size() + serialized_.size() / 4;
    first_pull_hint = std::clamp<size_t>(bytes, 1024, coalesce_after_bytes);
  }
  std::string out = std::move(serialized_);
  serialized_.clear();
  for (uint32_t i = 0; i < options_.choices; ++i) {
    auto& p = streams_[i];
    if (p.has_delta) {
      openai::chunk_delta d;
      d.index = i;
      d.first = !p.started;
      d.text = p.text;
      d.has_logprobs = options_.logprobs;
      d.logprobs = p.logprobs;
      d.text_offset = advance_offset(i, d.text.size());
      p.started = true;
      append_chunk(out, d);
    }
    if (!p.finish.empty()) {
      openai::chunk_delta d;
      d.index = i;
      d.first = !p.started;
      d.finish_reason = p.finish;
      p.started = true;
      p.closed = true;
      append_chunk(out, d);
    }
    p.text.clear();
    p.logprobs.clear();
    p.finish.clear();
    p.has_delta = false;
  }
  pending_bytes_ = 0;
  dirty_ = false;
  if (ended_) out += tail_;
  return out;
}

uint32_t generation_job::advance_offset(uint32_t index, size_t bytes) {
  const uint32_t at = streams_[index].offset;
  streams_[index].offset = static_cast<uint32_t>(std::min<size_t>(size_t{at} + bytes, UINT32_MAX));
  return at;
}

void generation_job::append_chunk(std::string& out, const openai::chunk_delta& delta) {
  make_room(out, delta.text.size());
  framing_.append_event(out, delta);
}

void generation_job::grow_room(std::string& out, size_t text_bytes) {
  // Events (~250 bytes each) pile up here while the session writes, a backend's burst of them
  // at once. The buffer starts with room for what this thread's last stream handed over in its
  // first pull (at least 1 KiB, all a reader that keeps up needs, from malloc's per-thread
  // cache): a fast backend's short answer arrives whole before that pull, so its buffer is
  // reserved once instead of at 1 KiB and again when full. Past that it grows fourfold instead
  // of doubling, so a burst reallocates and copies what it holds half as often. It holds at
  // most ~coalesce_after_bytes before coalescing starts.
  if (out.capacity() < 1024) {
    out.reserve(first_pull_hint);
  } else if (out.capacity() - out.size() < 512 + text_bytes) {
    out.reserve(4 * out.capacity());
  }
}

void generation_job::start_stream() {
  responded_ = true;
  http::response res;
  res.route = options_.route;
  res.content_type = "text/event-stream";
  res.stream = shared_from_this();
  if (auto respond = std::move(respond_)) respond(std::move(res));
}

void generation_job::flush() {
  if (!responded_) return start_stream();  // the session pulls once the head is written
  if (!next_) return;                      // a write is in progress; this waits for the pull
  if (serialized_.empty() && !dirty_ && !ended_) return;  // nothing new: keep the pull
  auto next = std::move(next_);
  next_ = nullptr;
  next(take_pending(), ended_);
}

void generation_job::pull(next_fn next) {
  next_ = std::move(next);
  flush();
}

}  // namespace moat::api
