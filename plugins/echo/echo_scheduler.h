// The echo backend's workers: a small fixed pool that steps every job, with a timer queue so
// that delay_ms between deltas costs a queue entry, not a sleeping thread (500 delayed streams
// need 2 threads, not 500).
//
// Job states, all changed under mutex_:
//   queued  — in timers_, due at some time; a worker takes it when due
//   running — a worker is stepping it (outside the lock, so callbacks never run under it)
//   parked  — fault: hang; in no queue until cancel() or shutdown() queues it
// A job is erased when its step sent the terminal event, so exactly one terminal per job.
//
//   scheduler s(2, std::chrono::milliseconds(5));
//   s.start(std::move(job));   // returns at once; events follow on the workers
//   s.cancel(id);              // the next step sends ERROR(MOAT_ERR_CANCELLED)
//   s.shutdown();              // terminal events for all, then joins
#pragma once

#include <chrono>
#include <condition_variable>
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

  // Takes the job; false when its id is already in flight or the scheduler is stopping.
  bool start(std::unique_ptr<echo_job> job);
  // Unknown or finished ids are ignored. Never blocks on a step.
  void cancel(uint64_t id);
  // Every job still in flight gets ERROR(MOAT_ERR_UNAVAILABLE) (or its pending cancel); then
  // the workers are joined. Must not be called from a worker (an event callback).
  void shutdown();
  size_t in_flight() const;

 private:
  enum class state { queued, running, parked };
  struct entry {
    std::unique_ptr<echo_job> job;
    state st = state::queued;
    bool cancel = false;
    moat_status cancel_code = MOAT_OK;
    std::multimap<clock::time_point, uint64_t>::iterator timer;  // valid while queued
  };

  // A job a worker took from the queue, stepped outside the lock.
  struct taken {
    uint64_t id;
    entry* e;  // jobs_ is node-based: stays valid while the job is running (never erased then)
    echo_job* job;
    bool cancelled;
    moat_status code;
    bool done;
  };
  static constexpr size_t max_batch = 64;  // jobs one worker takes per hold of the lock

  void worker_loop();
  void enqueue(uint64_t id, entry& e, clock::time_point due);  // mutex_ held
  void request_stop(entry& e, uint64_t id, moat_status code);   // mutex_ held

  const std::chrono::milliseconds delay_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::unordered_map<uint64_t, entry> jobs_;  // node-based: entry references stay valid
  std::multimap<clock::time_point, uint64_t> timers_;
  bool stopping_ = false;
  unsigned awake_ = 0;  // workers not blocked in a wait: start() wakes one only when none is
  bool wake_pending_ = false;  // start() notified and no worker has looked at the queue since
  std::vector<std::thread> workers_;
};

}  // namespace moat::echo
