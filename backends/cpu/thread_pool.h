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

  // Splits [0, n) into at most min(4 * size(), 255) contiguous chunks of at least `min_chunk`
  // indices (so tiny loops run inline instead of paying for a wake-up) and runs fn on each; threads
  // claim chunks as they finish the last, so a thread the OS delays (a shared machine) does not
  // hold everyone back at the end of the loop. fn may run several times per worker. An exception
  // from fn is rethrown here after all chunks finish.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                    int64_t min_chunk = 1);

  // How long a waiting thread spins before it sleeps: MOAT_CPU_SPIN_US (0 = always sleep),
  // default 100 microseconds.
  static int64_t spin_us();

 private:
  // state_ packs what a claim must check in one word, so that a claim is one compare-exchange:
  // [63..40] job generation, [39..32] its chunk count, [31..0] chunks claimed so far.
  static uint64_t pack(uint64_t gen, uint64_t chunks, uint64_t claimed) {
    return (gen & 0xFFFFFF) << 40 | (chunks & 0xFF) << 32 | claimed;
  }
  static uint32_t gen_of(uint64_t s) { return static_cast<uint32_t>(s >> 40); }
  static uint32_t chunks_of(uint64_t s) { return static_cast<uint32_t>(s >> 32) & 0xFF; }
  static uint32_t claimed_of(uint64_t s) { return static_cast<uint32_t>(s); }

  void worker_loop(int index);
  // Claims and runs chunks of job `gen` until none is left or a newer job replaced it.
  void run_chunks(uint32_t gen, int worker);

  std::vector<std::thread> workers_;
  const int64_t spin_ns_;
  // The current job. Completion counts chunks, not threads: a worker the OS has not scheduled
  // yet when the others have claimed every chunk is not waited for; when it runs, its claim
  // fails (the chunks are gone, or the generation moved on) and it goes back to waiting. The
  // fields are written before state_ publishes the job (release) and are valid for a claim that
  // succeeds: a successful claim means the job is not finished, so not yet replaced.
  std::atomic<const std::function<void(int64_t, int64_t, int)>*> job_{nullptr};
  std::atomic<int64_t> job_n_{0};
  std::atomic<uint64_t> state_{0};
  std::atomic<int> done_{0};         // chunks of the current job finished
  std::atomic<bool> failed_{false};  // a chunk of the current job threw: later chunks are skipped
  uint32_t generation_ = 0;          // the caller's count of jobs (only the caller writes it)
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
