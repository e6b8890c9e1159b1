// thread_pool: a fixed set of workers for one runner's parallel loops. The calling thread
// takes a share of the work too, so threads = N means N threads busy, never N + 1.
//
//   moat::cpu::thread_pool pool(4);
//   pool.parallel_for(rows, [&](int64_t begin, int64_t end, int worker) { ... });
//
// parallel_for blocks until every chunk is done. One parallel_for at a time (the runner's
// forward is single-caller). `worker` is in [0, size()) and indexes per-thread scratch.
//
// Waiting: a token of a 1B model is ~110 parallel regions a few hundred microseconds apart, with
// a few microseconds of serial work between them. Workers (and the caller, for the last chunk)
// spin for up to spin_us() before sleeping on a condition variable, so a region starts and ends
// without a futex round trip; after that they sleep, so an idle runner (or a machine shared with
// other work) does not lose a core to spinning for longer than that.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moat::cpu {

class thread_pool {
 public:
  explicit thread_pool(int threads);  // 0 = std::thread::hardware_concurrency()
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Splits [0, n) into at most 4 * size() contiguous chunks of at least `min_chunk` indices (so
  // tiny loops run inline instead of paying for a wake-up) and runs fn on each; threads claim
  // chunks as they finish the last, so a thread the OS delays (a shared machine) does not hold
  // everyone back at the end of the loop. fn may run several times per worker. An exception
  // from fn is rethrown here after all chunks finish.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                    int64_t min_chunk = 1);

  // How long a waiting thread spins before it sleeps: MOAT_CPU_SPIN_US (0 = always sleep),
  // default 100 microseconds.
  static int64_t spin_us();

 private:
  void worker_loop(int index);
  // Claims and runs chunks of the current job until none is left; the first error is kept.
  void run_chunks(const std::function<void(int64_t, int64_t, int)>& fn, int64_t n, int chunks,
                  int worker, std::exception_ptr& error);

  std::vector<std::thread> workers_;
  const int64_t spin_ns_;
  // The current job, written by the caller before generation_ is bumped (release) and read by
  // the workers after they see the new generation (acquire).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
  std::atomic<int> next_chunk_{0};       // the next unclaimed chunk of the current job
  std::atomic<uint64_t> generation_{0};  // bumped once per job; workers run each generation once
  std::atomic<int> pending_{0};          // workers still in the current job
  std::atomic<bool> stop_{false};
  // Sleeping: a thread that stopped spinning registers in sleepers_ (workers) or
  // caller_sleeping_ and waits on its condition variable under mu_; the other side notifies only
  // when someone registered (seq_cst on both sides, so a wake-up is never lost).
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_sleeping_{false};
  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace moat::cpu
