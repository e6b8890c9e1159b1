// Worker pool with a lock-free fast path and a timer queue; see echo_scheduler.h.
#include "echo_scheduler.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <ctime>

namespace moat::echo {

namespace {

// The futex under the workers' sleep: std::atomic::wait has no timeout, and timed jobs need
// one. The word is a std::atomic<uint32_t>, lock-free with the size and layout of a uint32_t.
static_assert(std::atomic<uint32_t>::is_always_lock_free &&
              sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
uint32_t* futex_address(std::atomic<uint32_t>& word) {
  return reinterpret_cast<uint32_t*>(&word);
}

// Sleeps while the word still holds `expected`, until a wake or `deadline` (steady_clock is
// CLOCK_MONOTONIC, the clock FUTEX_WAIT_BITSET measures absolute timeouts on). Spurious
// returns are harmless: the caller looks at its queues again.
void futex_wait(std::atomic<uint32_t>& word, uint32_t expected,
                scheduler::clock::time_point deadline) {
  timespec at{};
  timespec* timeout = nullptr;
  if (deadline != scheduler::clock::time_point::max()) {
    const auto since_epoch = deadline.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    at.tv_sec = static_cast<time_t>(seconds.count());
    at.tv_nsec = static_cast<long>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count());
    timeout = &at;
  }
  syscall(SYS_futex, futex_address(word), FUTEX_WAIT_BITSET_PRIVATE, expected, timeout, nullptr,
          FUTEX_BITSET_MATCH_ANY);
}

void futex_wake(std::atomic<uint32_t>& word, int count) {
  syscall(SYS_futex, futex_address(word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

// Runs a job to its terminal event; `stop`: send ERROR(code) at once instead (shutdown, a
// cancelled hanging job). Returns whether the terminal event went out.
bool run_to_end(echo_job& job, bool stop, moat_status code) {
  try {
    job.run(stop, code);
    return true;
  } catch (...) {
    // A step only throws on allocation failure; end the request rather than the process.
    try {
      return job.step(true, MOAT_ERR_INTERNAL);
    } catch (...) {
      return true;  // nothing more can be sent; the host's request timeout ends it
    }
  }
}

}  // namespace

scheduler::scheduler(unsigned workers, std::chrono::milliseconds delay) : delay_(delay) {
  workers_.reserve(workers);
  for (unsigned i = 0; i < workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

scheduler::~scheduler() {
  shutdown();
  free_retired();
}

void scheduler::free_retired() {
  echo_job* list = retired_.exchange(nullptr);
  while (list != nullptr) {
    echo_job* next = list->next_queued;
    delete list;
    list = next;
  }
}

bool scheduler::start(std::unique_ptr<echo_job> job) {
  // Counted before the stopping check: the workers do not leave while it is non-zero, so a
  // job that gets past the check is always run.
  in_flight_.fetch_add(1);
  if (stopping_.load()) {
    in_flight_.fetch_sub(1);
    return false;
  }
  if (delay_.count() == 0 && !job->waits_for_cancel()) {
    if (retired_.load(std::memory_order_relaxed) != nullptr) free_retired();
    echo_job* raw = job.release();  // owned by the list from here
    echo_job* head = fast_.load(std::memory_order_relaxed);
    do {
      raw->next_queued = head;
    } while (!fast_.compare_exchange_weak(head, raw));
    // Only the push that made the list non-empty may need to wake someone: a later one finds
    // a worker that is awake, or one already told to wake, and a worker drains the whole list.
    if (head == nullptr) wake_one_if_idle();
    return true;
  }
  const uint64_t id = job->id();
  const bool park = job->waits_for_cancel();
  {
    std::lock_guard lock(mutex_);
    // stopping_ again under the lock: shutdown() sets it under the lock, then stops every job
    // in jobs_; a job added after that would never be stopped.
    if (stopping_.load() || jobs_.count(id) != 0) {
      in_flight_.fetch_sub(1);
      return false;
    }
    entry& e = jobs_[id];
    e.job = std::move(job);
    timed_count_.fetch_add(1);
    if (park) {
      e.st = state::parked;
      return true;
    }
    enqueue(id, e, clock::now());
  }
  wake_one_if_idle();
  return true;
}

void scheduler::wake_one_if_idle() {
  // An awake worker sees the new work on its next turn, and one already woken looks at the
  // queues when it runs: no futex call then (one per burst of submits, not one per submit).
  if (awake_.load() != 0 || wake_pending_.exchange(true)) return;
  wake(false);
}

void scheduler::wake(bool all) {
  // Bumped first: a worker between its last look and its futex wait then returns at once.
  wake_word_.fetch_add(1);
  futex_wake(wake_word_, all ? INT_MAX : 1);
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
    if (it == jobs_.end()) return;  // finished, unknown, or a fast job (done in microseconds)
    request_stop(it->second, id, MOAT_ERR_CANCELLED);
  }
  wake(false);
}

void scheduler::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_.store(true);
    for (auto& [id, e] : jobs_) request_stop(e, id, MOAT_ERR_UNAVAILABLE);
  }
  wake(true);
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

bool scheduler::run_fast(echo_plan& buffers) {
  if (fast_.load(std::memory_order_relaxed) == nullptr) return false;  // no write while idle
  echo_job* list = fast_.exchange(nullptr);
  if (list == nullptr) return false;
  echo_job* ordered = nullptr;  // the list is newest first: reverse it to submit order
  while (list != nullptr) {
    echo_job* next = list->next_queued;
    list->next_queued = ordered;
    ordered = list;
    list = next;
  }
  echo_job* first = ordered;  // the batch, handed back whole once run
  echo_job* last = nullptr;
  size_t count = 0;
  for (echo_job* job = ordered; job != nullptr; job = job->next_queued) {
    // The job runs from its first step to its last here: it plans into this worker's buffers
    // (capacity kept from the last job) and hands them back, so it allocates nothing once warm.
    job->lend_plan(&buffers);
    run_to_end(*job, stopping_.load(std::memory_order_relaxed), MOAT_ERR_UNAVAILABLE);
    job->lend_plan(nullptr);
    buffers.trim();  // drops what an unusually large answer grew before the worker idles
    last = job;
    ++count;
  }
  // Back to the submitting side to be freed, with one CAS for the batch (none of these jobs
  // may be touched here after it). Counted out of in_flight_ only then, so shutdown's workers
  // leave after it and the destructor frees them all.
  echo_job* head = retired_.load(std::memory_order_relaxed);
  do {
    last->next_queued = head;
  } while (!retired_.compare_exchange_weak(head, first));
  in_flight_.fetch_sub(count);
  return true;
}

bool scheduler::run_timed(std::vector<taken>& batch) {
  // Every job due now (up to max_batch) is taken under one hold of the lock: a burst costs the
  // worker one lock round trip, not one per job.
  batch.clear();
  {
    std::lock_guard lock(mutex_);
    const clock::time_point now = clock::now();
    for (auto it = timers_.begin(); it != timers_.end() && it->first <= now && batch.size() < max_batch;
         it = timers_.begin()) {
      const uint64_t id = it->second;
      timers_.erase(it);
      entry& e = jobs_.at(id);
      e.st = state::running;
      batch.push_back(taken{id, &e, e.job.get(), e.cancel, e.cancel_code, false});
    }
  }
  if (batch.empty()) return false;

  for (taken& t : batch) {
    // With delay_ms 0 (a hanging job, cancelled) the job runs to its end in this turn.
    if (delay_.count() == 0) {
      t.done = run_to_end(*t.job, t.cancelled, t.code);
      continue;
    }
    try {
      t.done = t.job->step(t.cancelled, t.code);
    } catch (...) {
      // A step only throws on allocation failure; end the request rather than the process.
      t.done = run_to_end(*t.job, true, MOAT_ERR_INTERNAL);
    }
  }

  std::lock_guard lock(mutex_);
  const clock::time_point after = clock::now();
  for (const taken& t : batch) {
    if (t.done) {
      jobs_.erase(t.id);
      timed_count_.fetch_sub(1);
      in_flight_.fetch_sub(1);
      continue;
    }
    // A cancel that arrived during the step is sent at once; otherwise the next delta waits.
    entry& e = *t.e;
    enqueue(t.id, e, e.cancel ? after : after + delay_);
  }
  return true;
}

bool scheduler::has_work_or_stop(clock::time_point& next_due) {
  next_due = clock::time_point::max();
  if (fast_.load() != nullptr) return true;
  if (stopping_.load() && in_flight_.load() == 0) return true;
  std::lock_guard lock(mutex_);
  if (timers_.empty()) return false;
  next_due = timers_.begin()->first;
  return next_due <= clock::now();
}

void scheduler::worker_loop() {
  // Not SCHED_BATCH: a batch thread does not preempt on wakeup, which batches a burst but on a
  // busy machine left a lone request waiting up to a scheduler tick for its worker (c=1 fell
  // from ~40k to ~7k req/s in the echo benchmark at load 6).
  std::vector<taken> batch;  // this worker's, reused
  echo_plan buffers;         // lent to each fast job this worker runs
  batch.reserve(max_batch);
  awake_.fetch_add(1);
  for (;;) {
    // This worker looks at the queues now: whatever was pushed before is seen below, and a
    // push after this must wake someone again if every worker is asleep by then.
    wake_pending_.store(false);
    bool worked = run_fast(buffers);
    if (timed_count_.load() != 0) worked = run_timed(batch) || worked;
    if (worked) continue;
    if (stopping_.load() && in_flight_.load() == 0) break;

    // Sleep. The word is read before awake_ drops and the queues are looked at again: a
    // producer that saw this worker awake pushed before that look (which then sees it), and one
    // that saw it asleep bumps the word after, so the wait below returns at once.
    const uint32_t word = wake_word_.load();
    awake_.fetch_sub(1);
    clock::time_point due;
    if (has_work_or_stop(due)) {
      awake_.fetch_add(1);
      continue;
    }
    // While stopping, in_flight_ may count a job whose start() has not pushed it yet: look
    // again soon rather than wait for a wake that may not come.
    if (stopping_.load()) due = std::min(due, clock::now() + std::chrono::milliseconds(1));
    futex_wait(wake_word_, word, due);
    awake_.fetch_add(1);
  }
  awake_.fetch_sub(1);
}

}  // namespace moat::echo
