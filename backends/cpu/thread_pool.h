// thread_pool: a fixed set of workers for one runner's parallel loops. The calling thread
// takes a share of the work too, so threads = N means N threads busy, never N + 1.
//
//   moat::cpu::thread_pool pool(4);
//   pool.parallel_for(rows, [&](int64_t begin, int64_t end, int worker) { ... });
//
// parallel_for blocks until every chunk is done. One parallel_for at a time (the runner's
// forward is single-caller). `worker` is in [0, size()) and indexes per-thread scratch.
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
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t min_chunk = 1);

 private:
  void worker_loop(int index);
  // Claims and runs chunks of the current job until none is left; the first error is kept.
  void run_chunks(const std::function<void(int64_t, int64_t, int)>& fn, int64_t n, int chunks, int worker,
                  std::exception_ptr& error);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
  std::atomic<int> next_chunk_{0};  // the next unclaimed chunk of the current job
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace moat::cpu
