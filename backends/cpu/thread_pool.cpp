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
  uint32_t seen = 0;
  for (;;) {
    auto ready = [&] {
      return stop_.load(std::memory_order_acquire) ||
             gen_of(state_.load(std::memory_order_acquire)) != seen;
    };
    if (!spin_until(ready, spin_ns_)) {
      sleepers_.fetch_add(1);  // seq_cst: pairs with the caller's publish then sleepers_ load
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, ready);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = gen_of(state_.load(std::memory_order_acquire));
    run_chunks(seen, index);
  }
}

void thread_pool::run_chunks(uint32_t gen, int worker) {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (gen_of(s) != gen || claimed_of(s) >= chunks_of(s)) return;
    // Read before the claim; a claim that succeeds proves they belong to job `gen`.
    const auto* fn = job_.load(std::memory_order_relaxed);
    const int64_t n = job_n_.load(std::memory_order_relaxed);
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;
    const int chunks = static_cast<int>(chunks_of(s));
    const int c = static_cast<int>(claimed_of(s));
    if (!failed_.load(std::memory_order_relaxed)) {
      int64_t b, e;
      chunk_bounds(n, chunks, c, b, e);
      try {
        (*fn)(b, e, worker);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu_);
        if (!error_) error_ = std::current_exception();
        failed_.store(true, std::memory_order_relaxed);
      }
    }
    // seq_cst: the last chunk's increment then caller_sleeping_ load pairs with the caller's
    // store of caller_sleeping_ then done_ load.
    if (done_.fetch_add(1) + 1 == chunks && worker != 0 && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
    s = state_.load(std::memory_order_acquire);
  }
}

void thread_pool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                               int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t by_grain =
      (n + std::max<int64_t>(min_chunk, 1) - 1) / std::max<int64_t>(min_chunk, 1);
  const int chunks = static_cast<int>(std::min<int64_t>({by_grain, int64_t{4} * size(), 255}));
  if (chunks == 1 || workers_.empty()) {
    fn(0, n, 0);
    return;
  }
  // The previous job is finished (every chunk done), so no claim can succeed on it any more and
  // nothing reads these fields until state_ publishes the new job.
  job_.store(&fn, std::memory_order_relaxed);
  job_n_.store(n, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  failed_.store(false, std::memory_order_relaxed);
  error_ = nullptr;
  const uint32_t gen = ++generation_ & 0xFFFFFF;
  state_.store(pack(gen, static_cast<uint64_t>(chunks), 0));  // seq_cst: then the sleepers_ load
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);  // a registered sleeper is waiting or will see the job
    start_cv_.notify_all();
  }
  run_chunks(gen, 0);
  const bool timed = phase_times::enabled();
  const auto wait_start =
      timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  auto done = [&] { return done_.load(std::memory_order_acquire) == chunks; };
  if (!spin_until(done, spin_ns_)) {
    caller_sleeping_.store(true);  // seq_cst: the last chunk's increment then load sees it
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, done);
    caller_sleeping_.store(false);
  }
  if (timed) {
    phase_times::add_region(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now() - wait_start)
                                .count());
  }
  std::lock_guard<std::mutex> lock(error_mu_);
  if (error_) std::rethrow_exception(error_);
}

}  // namespace moat::cpu
