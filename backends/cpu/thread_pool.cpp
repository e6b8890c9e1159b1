#include "cpu/thread_pool.h"

#include <algorithm>

namespace moat::cpu {

namespace {
void chunk_bounds(int64_t n, int chunks, int index, int64_t& begin, int64_t& end) {
  begin = n * index / chunks;
  end = n * (index + 1) / chunks;
}
}  // namespace

thread_pool::thread_pool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

thread_pool::~thread_pool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void thread_pool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t, int)>* job;
    int64_t n;
    int chunks;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
      chunks = job_chunks_;
    }
    std::exception_ptr error;
    run_chunks(*job, n, chunks, index, error);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error && !error_) error_ = error;
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

void thread_pool::run_chunks(const std::function<void(int64_t, int64_t, int)>& fn, int64_t n, int chunks, int worker,
                             std::exception_ptr& error) {
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

void thread_pool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t by_grain = (n + std::max<int64_t>(min_chunk, 1) - 1) / std::max<int64_t>(min_chunk, 1);
  const int chunks = static_cast<int>(std::min<int64_t>(by_grain, int64_t{4} * size()));
  if (chunks == 1 || workers_.empty()) {
    fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_chunks_ = chunks;
    next_chunk_.store(0, std::memory_order_relaxed);  // published to the workers by mu_
    pending_ = static_cast<int>(workers_.size());
    error_ = nullptr;
    ++generation_;
  }
  start_cv_.notify_all();
  std::exception_ptr mine;
  run_chunks(fn, n, chunks, 0, mine);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  if (mine) std::rethrow_exception(mine);
  if (error_) std::rethrow_exception(error_);
}

}  // namespace moat::cpu
