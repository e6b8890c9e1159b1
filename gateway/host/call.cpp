#include "host/call.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <span>

#include "host/backend.h"
#include "host/completions.h"

namespace moat::host {

namespace {

std::string to_string(moat_str s) { return s.data && s.size ? std::string(s.data, s.size) : std::string(); }

openai::token_logprob copy_logprob(const moat_token_logprob& t) {
  openai::token_logprob out;
  out.token = to_string(t.text);
  out.bytes.assign(out.token.begin(), out.token.end());
  out.logprob = t.logprob;
  return out;
}

metrics::finish finish_label(moat_finish_reason reason) {
  switch (reason) {
    case MOAT_FINISH_LENGTH: return metrics::finish::length;
    case MOAT_FINISH_CONTENT_FILTER: return metrics::finish::content_filter;
    default: return metrics::finish::stop;
  }
}

}  // namespace

namespace {

void append_logprob_items(const moat_event& ev, std::vector<openai::logprob_item>& out) {
  out.reserve(out.size() + ev.logprob_count);
  for (size_t i = 0; i < ev.logprob_count; ++i) {
    openai::logprob_item item;
    item.chosen = copy_logprob(ev.logprobs[i].chosen);
    if (ev.logprobs[i].top) {
      for (size_t k = 0; k < ev.logprobs[i].top_count; ++k)
        item.top.push_back(copy_logprob(ev.logprobs[i].top[k]));
    }
    out.push_back(std::move(item));
  }
}

// A plain delta, FINISH or DONE has none: the usual case returns at once, inline in its caller.
inline void append_logprobs(const moat_event& ev, std::vector<openai::logprob_item>& out) {
  if (ev.logprobs && ev.logprob_count != 0) append_logprob_items(ev, out);
}

// The pending delta of choice `index` that a new delta of that choice can extend: the latest
// pending event of that choice, when it is a delta (not its FINISH). Events of other choices
// in between do not matter: a whole answer's sink keeps each choice apart, and each choice's
// own order is kept. Null when none is pending (the first delta, or a drain took it).
owned_event* coalescible_delta(std::span<owned_event> pending, uint32_t index) {
  for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
    if (it->index == index) return it->kind == MOAT_EVENT_DELTA ? &*it : nullptr;
  }
  return nullptr;
}

// Appends a delta to one already pending for the same choice. Its text grows on the backend's
// thread; one reservation up front spares the reallocations of a word-by-word doubling.
void append_delta(const moat_event& ev, owned_event& into) {
  if (ev.text.data && ev.text.size) {
    const size_t need = into.text.size() + ev.text.size;
    if (need > into.text.capacity())
      into.text.reserve(std::max<size_t>(need, 2 * into.text.capacity() + 96));
    into.text.append(ev.text.data, ev.text.size);
  }
  append_logprobs(ev, into.logprobs);
}

}  // namespace

void owned_event::copy_rare_parts(const moat_event& ev) {
  append_logprobs(ev, logprobs);
  if (ev.embedding && ev.embedding_dim)
    embedding.assign(ev.embedding, ev.embedding + ev.embedding_dim);
  if (ev.error_message.data && ev.error_message.size) {
    error_message.assign(ev.error_message.data, ev.error_message.size);
  }
}

call::call(backend& owner, uint64_t id, std::shared_ptr<event_sink> sink,
           const boost::asio::any_io_executor& strand, bool whole_answer)
    : owner_(owner),
      owner_alive_(owner.alive()),
      id_(id),
      sink_(std::move(sink)),
      strand_(strand),
      completions_(completion_queue::of(strand_)),
      lazy_(whole_answer),
      started_(std::chrono::steady_clock::now()) {
  // Room for a short answer's events, taken here on the I/O thread rather than grown step by
  // step by the backend's thread: a whole answer's joined delta, FINISH and DONE (inside the
  // call: no allocation); a streamed answer's deltas as they come between drains (a cached
  // block; the in-call room then goes to the drain's buffer, which the first drain hands to the
  // queue, so a backend thread that sends a few events between drains still allocates nothing).
  if (whole_answer) {
    pending_.reserve(event_arena::capacity);
  } else {
    pending_.reserve(event_arena::stream_capacity);
    draining_.reserve(event_arena::capacity);
  }
}

call::~call() {
  // Still watched when it never delivered a terminal event (its context was shut down first).
  if (watched_) completions_.unwatch(*this);
}

void call::on_event(void* user_data, const moat_event* event) noexcept {
  auto* self = static_cast<call*>(user_data);
  if (self == nullptr || event == nullptr) return;
  try {
    const bool terminal = event->kind == MOAT_EVENT_DONE || event->kind == MOAT_EVENT_ERROR;
    std::shared_ptr<call> post_ref;  // set when this event must post the drain
    std::shared_ptr<call> released;  // the backend's reference, dropped outside the lock
    {
      std::lock_guard lock(self->queue_lock_);
      if (!self->self_) return;  // an event after the terminal one: a plugin bug, ignored
      owned_event* into = nullptr;
      if (self->lazy_ && event->kind == MOAT_EVENT_DELTA) {
        // A whole answer's sink only joins the deltas of each choice: joined here, the I/O
        // thread delivers one delta per choice instead of one per word or token.
        into = coalescible_delta(self->pending_, event->index);
        if (into != nullptr) append_delta(*event, *into);
      }
      if (into == nullptr) {
        // Copied straight into its place in the queue (no temporary to move; a copy that throws
        // leaves the queue as it was); the lock is this call's alone, held by its drain only
        // for a swap.
        self->pending_.emplace_back(*event);
      }
      if (self->lazy_) {
        if (event->kind == MOAT_EVENT_DELTA &&
            self->first_delta_at_ == std::chrono::steady_clock::time_point{}) {
          self->first_delta_at_ = std::chrono::steady_clock::now();
        } else if (event->kind == MOAT_EVENT_FINISH) {
          self->last_finish_at_ = std::chrono::steady_clock::now();
        }
      }
      // The terminal event takes over the backend's reference: after it the backend never
      // touches user_data again, and the call lives until the strand has drained the queue
      // (the drain already posted, or the one posted here, holds a reference).
      const bool due = !self->lazy_ || terminal || self->pending_.size() >= lazy_cap;
      if (due && !self->drain_posted_) {
        self->drain_posted_ = true;
        // The terminal event hands the backend's reference over as is; an earlier one copies it.
        post_ref = terminal ? std::move(self->self_) : self->self_;
      } else if (terminal) {
        released = std::move(self->self_);
      }
    }
    // The call is alive here: post_ref or released holds it, or the backend's reference does.
    if (terminal) self->owner_.release_slot();
    if (post_ref) {
      completion_queue& queue = post_ref->completions_;  // named first: push takes post_ref over
      queue.push(std::move(post_ref));
    }
  } catch (const std::exception& e) {
    // Out of memory while copying: nothing may cross the ABI. The deadline still ends it.
    spdlog::error("dropping a backend event for request {}: {}", self->id_, e.what());
  }
}

void call::start_deadline(std::chrono::milliseconds timeout) {
  completions_.watch(*this, started_ + timeout, timeout);
}

void call::drain() {
  {
    std::lock_guard lock(queue_lock_);
    draining_.swap(pending_);  // draining_ is empty: the last drain cleared it
    drain_posted_ = false;
    drained_first_delta_at_ = first_delta_at_;
    drained_last_finish_at_ = last_finish_at_;
  }
  // One clock read per drain, not one per event: a batch is delivered within microseconds.
  const auto now = std::chrono::steady_clock::now();
  // Checked once per drain: within one, only its terminal event (the queue's last: none is
  // queued after it) ends the request, and a deadline or a shutdown comes as a handler of its
  // own, never in the middle of a drain.
  if (!finished_ && owner_alive_->load(std::memory_order_acquire)) {
    for (auto& event : draining_) {
      // The usual event of a stream: a delta after the first token, whose only metric is the
      // last token's time (saw_token_ is set only where there are metrics).
      if (event.kind == MOAT_EVENT_DELTA && saw_token_ && !lazy_ && sink_) {
        last_token_ = now;
        sink_->on_event(std::move(event));
        continue;
      }
      deliver(std::move(event), now);
    }
  }
  draining_.clear();
}

void call::deliver(owned_event&& event, std::chrono::steady_clock::time_point now) {
  if (finished_) return;  // ended: by its terminal event, or by the deadline
  record_metrics(event, now);
  const bool terminal = event.terminal();
  if (terminal) {
    finished_ = true;
    completions_.unwatch(*this);
  }
  if (sink_) sink_->on_event(std::move(event));
  if (terminal) sink_.reset();
}

void call::record_metrics(const owned_event& event, std::chrono::steady_clock::time_point now) {
  auto* m = owner_.metrics();
  if (m == nullptr) return;
  const auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
  switch (event.kind) {
    case MOAT_EVENT_DELTA: {
      // A whole answer's events are drained late (at its end): time them by their arrival.
      const bool stamped =
          lazy_ && drained_first_delta_at_ != std::chrono::steady_clock::time_point{};
      if (!saw_token_) {
        saw_token_ = true;
        first_token_ = stamped ? drained_first_delta_at_ : now;
        m->ttft.observe(seconds(first_token_ - started_));
      }
      last_token_ = lazy_ && drained_last_finish_at_ != std::chrono::steady_clock::time_point{}
                        ? drained_last_finish_at_
                        : now;
      break;
    }
    case MOAT_EVENT_FINISH:
      last_finish_ = event.finish_reason;
      break;
    case MOAT_EVENT_DONE:
      m->e2e_latency.observe(seconds(now - started_));
      m->prompt_tokens.add(event.usage.prompt_tokens);
      m->generation_tokens.add(event.usage.completion_tokens);
      if (saw_token_ && event.usage.completion_tokens > 1) {
        m->tpot.observe(seconds(last_token_ - first_token_) /
                        static_cast<double>(event.usage.completion_tokens - 1));
      }
      m->success[static_cast<size_t>(cancelled_ ? metrics::finish::abort : finish_label(last_finish_))].add();
      break;
    case MOAT_EVENT_ERROR:
      m->e2e_latency.observe(seconds(now - started_));
      if (cancelled_) m->success[static_cast<size_t>(metrics::finish::abort)].add();
      break;
    default:
      break;
  }
}

void call::cancel() {
  if (finished_ || cancelled_ || !owner_alive_->load()) return;
  cancelled_ = true;
  owner_.cancel(id_);
}

void call::on_deadline() {
  if (finished_ || !owner_alive_->load()) return;
  spdlog::warn("request {} to model '{}' got no terminal event within request_timeout_s; cancelled",
               id_, owner_.name());
  owner_.cancel(id_);
  finished_ = true;
  owned_event timeout;
  timeout.kind = MOAT_EVENT_ERROR;
  timeout.error_code = MOAT_ERR_TIMEOUT;
  timeout.error_message = fmt::format("the backend for model '{}' did not finish within the request timeout",
                                      owner_.name());
  if (sink_) sink_->on_event(std::move(timeout));
  sink_.reset();
}

}  // namespace moat::host
