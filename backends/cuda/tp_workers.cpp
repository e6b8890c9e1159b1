#include "tp_workers.h"

#include <fmt/format.h>

#include "engine/model_error.h"

namespace moat::cuda {

namespace {

std::string what_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

tp_workers::tp_workers(int32_t world, const rank_fn& init, std::function<void()> abort)
    : world_(world), abort_(std::move(abort)) {
  if (world < 1) throw engine::model_error(fmt::format("tensor parallel: world size {} must be at least 1", world));
  // init runs as generation 1 on the ranks' own threads, so thread-bound state (the current
  // CUDA device) is set where the steps will run.
  {
    std::lock_guard lock(mu_);
    step_ = &init;
    generation_ = 1;
    pending_ = world_;
  }
  threads_.reserve(static_cast<size_t>(world_));
  for (int32_t r = 0; r < world_; ++r) threads_.emplace_back([this, r] { loop(r); });
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  step_ = nullptr;
  if (!error_.empty()) {
    const std::string why = error_;
    stop_ = true;
    lock.unlock();
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    throw engine::model_error(why);
  }
}

tp_workers::~tp_workers() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void tp_workers::loop(int32_t rank) {
  uint64_t seen = 0;
  for (;;) {
    const rank_fn* step = nullptr;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (generation_ == seen) return;  // stopping, nothing new to run
      seen = generation_;
      step = step_;
    }
    try {
      (*step)(rank);
    } catch (...) {
      fail(rank, std::current_exception());
    }
    {
      std::lock_guard lock(mu_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }
}

void tp_workers::fail(int32_t rank, std::exception_ptr e) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    if (error_.empty()) {
      error_ = fmt::format("tensor parallel rank {}: {}", rank, what_of(e));
      first = true;
    }
  }
  // Outside the lock: abort() makes the other ranks' collectives fail, and they report here.
  if (first && abort_) {
    try {
      abort_();
    } catch (...) {  // the abort is best effort; the error above is what the caller sees
    }
  }
}

void tp_workers::run(const rank_fn& step) {
  std::unique_lock lock(mu_);
  if (!error_.empty()) throw engine::model_error(error_ + " (earlier step; the model must be re-created)");
  step_ = &step;
  ++generation_;
  pending_ = world_;
  lock.unlock();
  work_cv_.notify_all();
  lock.lock();
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  step_ = nullptr;
  ++steps_;
  if (!error_.empty()) throw engine::model_error(error_);
}

bool tp_workers::broken() const {
  std::lock_guard lock(mu_);
  return !error_.empty();
}

int64_t tp_workers::steps() const {
  std::lock_guard lock(mu_);
  return steps_;
}

}  // namespace moat::cuda
