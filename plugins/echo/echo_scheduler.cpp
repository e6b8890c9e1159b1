// Worker pool with a timer queue; see echo_scheduler.h for the job states.
#include "echo_scheduler.h"

namespace moat::echo {

scheduler::scheduler(unsigned workers, std::chrono::milliseconds delay) : delay_(delay) {
  workers_.reserve(workers);
  for (unsigned i = 0; i < workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

scheduler::~scheduler() { shutdown(); }

bool scheduler::start(std::unique_ptr<echo_job> job) {
  const uint64_t id = job->id();
  const bool park = job->waits_for_cancel();
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || jobs_.count(id) != 0) return false;
    entry& e = jobs_[id];
    e.job = std::move(job);
    if (park) {
      e.st = state::parked;
      return true;
    }
    enqueue(id, e, clock::now());
    // A worker that is awake takes the job on its next turn, and one already told to wake takes
    // it when it runs: no wakeup (a futex call and a context switch) per request while the
    // workers keep up, and one wakeup for a burst of submits.
    if (awake_ > 0 || wake_pending_) return true;
    wake_pending_ = true;
  }
  wake_.notify_one();
  return true;
}

void scheduler::enqueue(uint64_t id, entry& e, clock::time_point due) {
  e.st = state::queued;
  e.timer = timers_.emplace(due, id);
}

void scheduler::request_stop(entry& e, uint64_t id, moat_status code) {
  if (e.cancel) return;  // the first reason wins
  e.cancel = true;
  e.cancel_code = code;
  // Honour it now, not after the remaining delay: move the job to the front.
  if (e.st == state::queued) {
    timers_.erase(e.timer);
    enqueue(id, e, clock::now());
  } else if (e.st == state::parked) {
    enqueue(id, e, clock::now());
  }
  // running: the worker sees the flag when the step ends and requeues at once.
}

void scheduler::cancel(uint64_t id) {
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    request_stop(it->second, id, MOAT_ERR_CANCELLED);
  }
  wake_.notify_one();
}

void scheduler::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [id, e] : jobs_) request_stop(e, id, MOAT_ERR_UNAVAILABLE);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

size_t scheduler::in_flight() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

void scheduler::worker_loop() {
  // Not SCHED_BATCH: a batch thread does not preempt on wakeup, which batches a burst but on a
  // busy machine left a lone request waiting up to a scheduler tick for its worker (c=1 fell
  // from ~40k to ~7k req/s in the echo benchmark at load 6).
  std::vector<taken> batch;  // this worker's, reused
  batch.reserve(max_batch);
  std::unique_lock lock(mutex_);
  ++awake_;
  for (;;) {
    // This worker looks at the queue now: what start() queued so far is seen, so the next
    // start() must wake someone again (also when its notify reached no waiter at all).
    wake_pending_ = false;
    if (timers_.empty()) {
      if (stopping_ && jobs_.empty()) break;
      --awake_;
      wake_.wait(lock);
      ++awake_;
      continue;
    }
    const auto first = timers_.begin();
    // A copy: another thread may erase the entry while this one waits.
    const clock::time_point due = first->first;
    const clock::time_point now = clock::now();
    if (due > now) {
      --awake_;
      wake_.wait_until(lock, due);
      ++awake_;
      continue;
    }
    // Every job due now (up to max_batch) is taken under this one hold of the lock: a burst of
    // submits costs the worker one lock round trip, not one per job, and start() on the I/O
    // thread rarely finds the lock taken.
    batch.clear();
    for (auto it = timers_.begin(); it != timers_.end() && it->first <= now && batch.size() < max_batch;
         it = timers_.begin()) {
      const uint64_t id = it->second;
      timers_.erase(it);
      entry& e = jobs_.at(id);
      e.st = state::running;
      batch.push_back(taken{id, &e, e.job.get(), e.cancel, e.cancel_code, false});
    }

    lock.unlock();
    for (taken& t : batch) {
      try {
        t.done = t.job->step(t.cancelled, t.code);
        // No delay between deltas: the whole answer goes out in one turn. Re-queueing after
        // every delta would cost a lock and a timer entry per delta, and would hand the host one
        // cross-thread wakeup per delta instead of one per answer. A cancel arriving meanwhile
        // finds the job gone (the answer took microseconds).
        while (!t.done && delay_.count() == 0) t.done = t.job->step(false, MOAT_OK);
      } catch (...) {
        // A step only throws on allocation failure; end the request rather than the process.
        t.done = t.job->step(true, MOAT_ERR_INTERNAL);
      }
    }
    lock.lock();

    const clock::time_point after = clock::now();
    for (const taken& t : batch) {
      if (t.done) {
        jobs_.erase(t.id);
        continue;
      }
      // A cancel that arrived during the step is sent at once; otherwise the next delta waits.
      entry& e = *t.e;
      enqueue(t.id, e, e.cancel ? after : after + delay_);
      if (e.cancel) wake_.notify_one();
    }
    if (stopping_ && jobs_.empty()) wake_.notify_all();
  }
  --awake_;
}

}  // namespace moat::echo
