#include "cpu/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "cpu/phase_times.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace moat::cpu {

namespace {

void chunk_bounds(int64_t n, int chunks, int index, int64_t& begin, int64_t& end) {
  begin = n * index / chunks;
  end = n * (index + 1) / chunks;
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Spins until done() or spin_ns have passed; true when done() became true.
template <class pred>
bool spin_until(pred done, int64_t spin_ns) {
  if (spin_ns <= 0) return done();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns);
  for (;;) {
    for (int i = 0; i < 64; ++i) {  // the clock is read once per 64 checks
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

}  // namespace

int64_t thread_pool::spin_us() {
  static const int64_t us = [] {
    const char* v = std::getenv("MOAT_CPU_SPIN_US");
    if (v == nullptr || *v == '\0') return int64_t{100};
    char* end = nullptr;
    const long long parsed = std::strtoll(v, &end, 10);
    return (end != v && parsed >= 0) ? static_cast<int64_t>(std::min<long long>(parsed, 1'000'000))
                                     : int64_t{100};
  }();
  return us;
}

thread_pool::thread_pool(int threads) : spin_ns_(spin_us() * 1000) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

thread_pool::~thread_pool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void thread_pool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] {
      return stop_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!spin_until(ready, spin_ns_)) {
      sleepers_.fetch_add(1);  // seq_cst: pairs with the caller's bump then sleepers_ load
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, ready);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    std::exception_ptr error;
    run_chunks(*job_, job_n_, job_chunks_, index, error);
    if (error) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = error;
    }
    if (pending_.fetch_sub(1) == 1 &&
        caller_sleeping_.load()) {  // seq_cst: see parallel_for's wait
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

void thread_pool::run_chunks(const std::function<void(int64_t, int64_t, int)>& fn, int64_t n,
                             int chunks, int worker, std::exception_ptr& error) {
  for (int c = next_chunk_.fetch_add(1, std::memory_order_relaxed); c < chunks;
       c = next_chunk_.fetch_add(1, std::memory_order_relaxed)) {
    if (error) continue;  // keep claiming so the loop ends; skip the work after a failure
    int64_t b, e;
    chunk_bounds(n, chunks, c, b, e);
    try {
      fn(b, e, worker);
    } catch (...) {
      error = std::current_exception();
    }
  }
}

void thread_pool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                               int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t by_grain =
      (n + std::max<int64_t>(min_chunk, 1) - 1) / std::max<int64_t>(min_chunk, 1);
  const int chunks = static_cast<int>(std::min<int64_t>(by_grain, int64_t{4} * size()));
  if (chunks == 1 || workers_.empty()) {
    fn(0, n, 0);
    return;
  }
  // Every worker has finished the previous job (pending_ reached 0), so these plain writes race
  // with nothing; the release bump of generation_ publishes them.
  job_ = &fn;
  job_n_ = n;
  job_chunks_ = chunks;
  error_ = nullptr;
  next_chunk_.store(0, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: a worker that registered as a sleeper is seen below
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);  // a registered sleeper is waiting or will see the bump
    start_cv_.notify_all();
  }
  std::exception_ptr mine;
  run_chunks(fn, n, chunks, 0, mine);
  const bool timed = phase_times::enabled();
  const auto wait_start =
      timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done, spin_ns_)) {
    caller_sleeping_.store(true);  // seq_cst: the last worker's decrement then load sees it
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, done);
    caller_sleeping_.store(false);
  }
  if (timed) {
    phase_times::add_region(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now() - wait_start)
                                .count());
  }
  if (mine) std::rethrow_exception(mine);
  std::lock_guard<std::mutex> lock(error_mu_);
  if (error_) std::rethrow_exception(error_);
}

}  // namespace moat::cpu
