// tp_workers: one thread per tensor-parallel rank and the step protocol between them and the
// scheduler thread. Host logic only (no CUDA), so it is tested on the CPU; the cuda backend
// runs each rank's forward on its thread (cudaSetDevice in `init`) and the ranks meet in NCCL
// all-reduces (nccl_comm.h) inside a step.
//
// Protocol: run(step) hands the same step to every rank and returns when all ranks finished
// it. Ranks block on each other inside a step (collectives), so a rank that fails would leave
// the others waiting forever: the first failure calls `abort` (ncclCommAbort for NCCL, which
// makes the blocked collectives return an error) before run() rethrows it, and the group is
// broken from then on (every later run() throws the first error; communicators cannot be
// reused after an abort). The whole model must then be re-created.
//
//   tp_workers w(devices.size(), [&](int32_t rank) { check(cudaSetDevice(devices[rank])); },
//                [&] { comm.abort(); });
//   w.run([&](int32_t rank) { forward_rank(rank, batch); });   // throws engine::model_error
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace moat::cuda {

class tp_workers {
 public:
  using rank_fn = std::function<void(int32_t rank)>;

  // Starts `world` threads and runs init(rank) on each (device binding, weight upload); throws
  // engine::model_error naming the rank when any init fails (after joining every thread).
  tp_workers(int32_t world, const rank_fn& init, std::function<void()> abort);
  ~tp_workers();  // joins the threads (a step in flight finishes first)
  tp_workers(const tp_workers&) = delete;
  tp_workers& operator=(const tp_workers&) = delete;

  // Runs step(rank) on every rank's thread; one step at a time (the scheduler's thread calls
  // it). Throws engine::model_error "tensor parallel rank R: ..." for the first rank that failed.
  void run(const rank_fn& step);

  int32_t world() const { return world_; }
  bool broken() const;
  int64_t steps() const;

 private:
  void loop(int32_t rank);
  void fail(int32_t rank, std::exception_ptr e);

  int32_t world_;
  std::function<void()> abort_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  const rank_fn* step_ = nullptr;  // the step in flight
  uint64_t generation_ = 0;        // bumped per step; each rank runs each generation once
  int32_t pending_ = 0;            // ranks still running the current step
  bool stop_ = false;
  std::string error_;              // the first failure, "tensor parallel rank R: what"
  int64_t steps_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace moat::cuda
