// The echo backend's workers: a small fixed pool that steps every job, with a timer queue so
// that delay_ms between deltas costs a queue entry, not a sleeping thread (500 delayed streams
// need 2 threads, not 500).
//
// Two ways in:
//  - fast (delay_ms 0, no hang fault): start() pushes the job onto a lock-free list (no lock,
//    no allocation) and a worker runs it to its terminal event in one go, planning it into the
//    worker's own buffers (echo_plan, reused job after job). Such a job cannot be cancelled (it
//    is done microseconds after a worker sees it) and is in no map.
//  - timed (delay_ms > 0, or a job that hangs until cancelled): the job lives in jobs_ under
//    mutex_, in one of these states:
//      queued  — in timers_, due at some time; a worker takes it when due
//      running — a worker is stepping it (outside the lock, so callbacks never run under it)
//      parked  — fault: hang; in no queue until cancel() or shutdown() queues it
//    A job is erased when its step sent the terminal event, so exactly one terminal per job.
//
// Freeing: a fast job was allocated by the submitting thread (the gateway's I/O thread) and is
// freed there too: a worker hands finished jobs back on a second lock-free list, which the next
// start() empties. Freed on the worker, every job's blocks went back to the I/O thread's malloc
// arena under its lock, which the I/O thread's own mallocs then waited for.
//
// Waking: start() wakes a worker only when the fast list goes from empty to non-empty (or a
// timed job arrives) and no worker is awake or already told to wake: a burst of submits that a
// worker is still draining costs no futex call.
//
//   scheduler s(2, std::chrono::milliseconds(5));
//   s.start(std::move(job));   // returns at once; events follow on the workers
//   s.cancel(id);              // the next step sends ERROR(MOAT_ERR_CANCELLED)
//   s.shutdown();              // terminal events for all, then joins
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "echo_job.h"

namespace moat::echo {

class scheduler {
 public:
  using clock = std::chrono::steady_clock;

  scheduler(unsigned workers, std::chrono::milliseconds delay);
  ~scheduler();  // shutdown()
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // Takes the job; false when the scheduler is stopping, or (timed jobs) when its id is
  // already in flight. Any thread; never blocks on a step.
  bool start(std::unique_ptr<echo_job> job);
  // Unknown, finished or fast ids are ignored. Never blocks on a step.
  void cancel(uint64_t id);
  // Every job still in flight gets ERROR(MOAT_ERR_UNAVAILABLE) (or its pending cancel); then
  // the workers are joined. Must not be called from a worker (an event callback).
  void shutdown();
  size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  enum class state { queued, running, parked };
  struct entry {
    std::unique_ptr<echo_job> job;
    state st = state::queued;
    bool cancel = false;
    moat_status cancel_code = MOAT_OK;
    std::multimap<clock::time_point, uint64_t>::iterator timer;  // valid while queued
  };

  // A timed job a worker took from the queue, stepped outside the lock.
  struct taken {
    uint64_t id = 0;
    entry* e = nullptr;  // jobs_ is node-based: valid while the job is running (never erased then)
    echo_job* job = nullptr;
    bool cancelled = false;
    moat_status code = MOAT_OK;
    bool done = false;
  };
  static constexpr size_t max_batch = 64;  // timed jobs one worker takes per hold of the lock

  void worker_loop();
  // Runs every job on the fast list, lending each this worker's plan buffers; false if none.
  bool run_fast(echo_plan& buffers);
  void free_retired();                        // frees the finished fast jobs handed back
  bool run_timed(std::vector<taken>& batch);  // steps the due timed jobs; false if none
  // Before sleeping: whether there is work (or the end) after all; else when the next timed
  // job is due (max() when none).
  bool has_work_or_stop(clock::time_point& next_due);
  void wake_one_if_idle();  // a producer's side of the wake protocol
  void wake(bool all);
  void enqueue(uint64_t id, entry& e, clock::time_point due);  // mutex_ held
  void request_stop(entry& e, uint64_t id, moat_status code);   // mutex_ held

  const std::chrono::milliseconds delay_;

  // Fast jobs: a LIFO list linked through echo_job::next_queued, owned by the list (released
  // from their unique_ptr at push), drained whole by exchange and reversed to submit order.
  std::atomic<echo_job*> fast_{nullptr};
  // Finished fast jobs, linked the same way, for start() to free (see above).
  std::atomic<echo_job*> retired_{nullptr};
  // Jobs accepted and not yet terminal (both ways); shutdown's workers wait for zero.
  std::atomic<size_t> in_flight_{0};
  std::atomic<bool> stopping_{false};
  // The wake protocol, seq_cst throughout: a producer pushes, then reads awake_; a worker
  // lowers awake_, then re-checks the queues; so one of the two sees the other.
  std::atomic<unsigned> awake_{0};         // workers not asleep
  std::atomic<bool> wake_pending_{false};  // a wake was sent and no worker has looked since
  std::atomic<uint32_t> wake_word_{0};     // the futex the workers sleep on; bumped by a wake

  // Timed jobs.
  std::mutex mutex_;
  std::unordered_map<uint64_t, entry> jobs_;  // node-based: entry references stay valid
  std::multimap<clock::time_point, uint64_t> timers_;
  std::atomic<size_t> timed_count_{0};  // jobs_.size(), readable without the lock

  std::vector<std::thread> workers_;
};

}  // namespace moat::echo
