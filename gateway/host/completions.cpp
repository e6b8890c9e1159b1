#include "host/completions.h"

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>

#include "host/call.h"
#include "util/executor.h"

namespace moat::host {

completion_queue::completion_queue(boost::asio::execution_context& ctx) : service(ctx) {}

completion_queue::~completion_queue() {
  generation_.fetch_add(1, std::memory_order_release);
}

completion_queue& completion_queue::of(const boost::asio::any_io_executor& ex) {
  boost::asio::execution_context& ctx = boost::asio::query(ex, boost::asio::execution::context);
  // The generation is read before the lookup: a queue destroyed after that read changed it, so
  // what is remembered here is never taken for a live queue once its context is gone (even
  // when a new context reuses the address).
  thread_local boost::asio::execution_context* last_context = nullptr;
  thread_local completion_queue* last_queue = nullptr;
  thread_local uint64_t last_generation = 0;
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  if (&ctx == last_context && generation == last_generation) return *last_queue;
  completion_queue& queue = boost::asio::use_service<completion_queue>(ctx);
  last_context = &ctx;
  last_queue = &queue;
  last_generation = generation;
  return queue;
}

void completion_queue::push(std::shared_ptr<call> c) {
  std::optional<boost::asio::any_io_executor> post_on;
  {
    std::lock_guard lock(mutex_);
    if (!posted_) {
      posted_ = true;
      post_on = c->strand_;
    }
    ready_.push_back(std::move(c));
  }
  if (post_on) boost::asio::post(*post_on, [this] { run(); });
}

void completion_queue::run() {
  std::vector<std::shared_ptr<call>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(ready_);
    posted_ = false;
  }
  for (auto& c : batch) {
    // A call whose executor already runs here (with one I/O thread, every call's) is drained
    // directly, as dispatch() would, without wrapping a handler per call.
    if (util::running_here(c->strand_)) {
      c->drain();
      continue;
    }
    call& target = *c;  // named first: the lambda takes c over
    boost::asio::dispatch(target.strand_, [keep = std::move(c)] { keep->drain(); });
  }
}

void completion_queue::watch(call& c, clock::time_point due, std::chrono::milliseconds timeout) {
  // A tenth of the timeout, so a short one (tests, strict configs) is not cut a whole second
  // late, and at most a second, so the default 600 s costs one sweep a second.
  const clock::duration tick = std::clamp<clock::duration>(
      timeout / 10, std::chrono::milliseconds(10), std::chrono::seconds(1));
  std::lock_guard lock(deadline_mutex_);
  c.due_ = due;
  c.watch_prev_ = nullptr;
  c.watch_next_ = watched_;
  if (watched_ != nullptr) watched_->watch_prev_ = &c;
  watched_ = &c;
  c.watched_ = true;
  ++watched_count_;
  tick_ = std::min(tick_, tick);
  if (shut_down_) return;  // nothing runs any more: the call ends with the context
  if (!sweep_timer_) sweep_timer_.emplace(c.strand_);
  if (!sweep_armed_) arm_locked();
}

void completion_queue::unwatch(call& c) {
  std::lock_guard lock(deadline_mutex_);
  if (c.watched_) unlink_locked(c);
}

void completion_queue::unlink_locked(call& c) {
  if (c.watch_prev_ != nullptr) {
    c.watch_prev_->watch_next_ = c.watch_next_;
  } else {
    watched_ = c.watch_next_;
  }
  if (c.watch_next_ != nullptr) c.watch_next_->watch_prev_ = c.watch_prev_;
  c.watch_prev_ = c.watch_next_ = nullptr;
  c.watched_ = false;
  --watched_count_;
}

size_t completion_queue::watched() const {
  std::lock_guard lock(deadline_mutex_);
  return watched_count_;
}

void completion_queue::arm_locked() {
  sweep_armed_ = true;
  sweep_timer_->expires_after(tick_);
  sweep_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
}

void completion_queue::sweep() {
  std::vector<std::shared_ptr<call>> overdue;
  {
    const auto now = clock::now();
    std::lock_guard lock(deadline_mutex_);
    for (call* c = watched_; c != nullptr;) {
      call* next = c->watch_next_;
      if (c->due_ <= now) {
        // A call whose last reference is going (its destructor waits for this lock to unwatch
        // itself) needs no timeout any more.
        if (auto ref = c->weak_from_this().lock()) {
          overdue.push_back(std::move(ref));
          unlink_locked(*c);
        }
      }
      c = next;
    }
    if (watched_ != nullptr) {
      arm_locked();
    } else {
      sweep_armed_ = false;  // idle: the next watch() arms it again
    }
  }
  // Posted outside the lock: dropping a reference here may destroy a call, which unwatches.
  for (auto& c : overdue) {
    call& target = *c;  // named first: the lambda takes c over
    boost::asio::post(target.strand_, [keep = std::move(c)] { keep->on_deadline(); });
  }
}

void completion_queue::shutdown() {
  std::vector<std::shared_ptr<call>> dropped;
  {
    std::lock_guard lock(mutex_);
    dropped.swap(ready_);
  }
  // Its wait is gone with the context's queues; the timer goes while the timer service exists
  // (it may have been registered after this service, and so be destroyed before it).
  std::lock_guard lock(deadline_mutex_);
  sweep_timer_.reset();
  sweep_armed_ = false;
  shut_down_ = true;
}

}  // namespace moat::host
