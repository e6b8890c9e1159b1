#include "api/generation.h"

#include <spdlog/spdlog.h>

#include "api/errors.h"
#include "host/plugin.h"

namespace moat::api {

const char* finish_reason_text(moat_finish_reason reason) {
  switch (reason) {
    case MOAT_FINISH_LENGTH: return "length";
    case MOAT_FINISH_CONTENT_FILTER: return "content_filter";
    default: return "stop";
  }
}

generation_job::generation_job(generation_options options, http::responder respond,
                               metrics::registry& metrics)
    : options_(std::move(options)), respond_(std::move(respond)), metrics_(metrics) {
  if (options_.choices == 0) options_.choices = 1;
  if (options_.stream) {
    started_.assign(options_.choices, false);
  } else {
    results_.resize(options_.choices);
    for (uint32_t i = 0; i < options_.choices; ++i) results_[i].index = i;
  }
}

void generation_job::reject(const openai::api_error& error) {
  responded_ = true;
  ended_ = true;
  if (auto respond = std::move(respond_)) respond(error_response(metrics_, error, options_.route));
}

void generation_job::on_event(host::owned_event&& event) {
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
    r.text += event.text;
    if (options_.logprobs) {
      r.has_logprobs = true;
      for (auto& lp : event.logprobs) r.logprobs.push_back(std::move(lp));
    }
    return;
  }
  openai::chunk_delta d;
  d.index = event.index;
  d.first = !started_[event.index];
  started_[event.index] = true;
  d.text = std::move(event.text);
  d.has_logprobs = options_.logprobs;
  d.logprobs = std::move(event.logprobs);
  append_chunk(d);
  flush();
}

void generation_job::on_finish(const host::owned_event& event) {
  if (!options_.stream) {
    results_[event.index].finish_reason = finish_reason_text(event.finish_reason);
    return;
  }
  openai::chunk_delta d;
  d.index = event.index;
  d.first = !started_[event.index];
  started_[event.index] = true;
  d.finish_reason = finish_reason_text(event.finish_reason);
  d.has_logprobs = false;
  append_chunk(d);
  flush();
}

void generation_job::on_done(const host::owned_event& event) {
  const openai::usage_counts usage{event.usage.prompt_tokens, event.usage.completion_tokens};
  if (!options_.stream) {
    for (auto& r : results_) {
      if (r.finish_reason.empty()) r.finish_reason = "stop";
    }
    http::response res;
    res.route = options_.route;
    res.body = options_.chat ? openai::chat_completion_json(options_.meta, results_, usage)
                             : openai::completion_json(options_.meta, results_, usage);
    responded_ = true;
    ended_ = true;
    if (auto respond = std::move(respond_)) respond(std::move(res));
    return;
  }
  // A choice the backend never finished explicitly still gets its closing chunk.
  for (uint32_t i = 0; i < options_.choices; ++i) {
    if (started_[i]) continue;
    openai::chunk_delta d;
    d.index = i;
    d.first = true;
    d.finish_reason = "stop";
    append_chunk(d);
  }
  if (options_.include_usage) {
    pending_ += openai::sse_data(options_.chat ? openai::chat_usage_chunk_json(options_.meta, usage)
                                               : openai::completion_usage_chunk_json(options_.meta, usage));
  }
  pending_ += openai::sse_done;
  ended_ = true;
  flush();
}

void generation_job::on_error(const host::owned_event& event) {
  const auto error = backend_error(event.error_code, event.error_message);
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
  pending_ += openai::sse_error(error);
  pending_ += openai::sse_done;
  ended_ = true;
  flush();
}

void generation_job::append_chunk(const openai::chunk_delta& delta) {
  pending_ += openai::sse_data(options_.chat ? openai::chat_chunk_json(options_.meta, delta, options_.include_usage)
                                             : openai::completion_chunk_json(options_.meta, delta,
                                                                             options_.include_usage));
  if (pending_.size() > max_pending_bytes && !overflowed_) {
    // The client reads slower than the backend writes: stop the backend instead of buffering.
    overflowed_ = true;
    if (auto c = call_.lock()) c->cancel();
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
  if (next_ && (!pending_.empty() || ended_)) {
    auto next = std::move(next_);
    next_ = nullptr;
    std::string data = std::move(pending_);
    pending_.clear();
    next(std::move(data), ended_);
  }
}

void generation_job::pull(next_fn next) {
  next_ = std::move(next);
  flush();
}

}  // namespace moat::api
