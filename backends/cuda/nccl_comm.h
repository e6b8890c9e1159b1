// nccl_group: the NCCL communicators of one process's tensor-parallel ranks, created together
// with ncclCommInitAll (one process, one device per rank), used one per rank thread
// (tp_workers.h): the sum all-reduce after each row-parallel projection (wo, w_down) and the
// all-gather of the vocabulary-split logits. Every NCCL error is an engine::model_error with
// nccl_error_text's wording; nothing aborts.
//
//   nccl_group comm({0, 1});                                       // throws model_error
//   // on rank r's thread, device set, stream s:
//   comm.all_reduce_sum(r, partial, n_tokens * hidden, s);         // in place, f32
//   comm.all_gather(r, my_logits, all_logits, rows_per_rank, s);   // rank-major result
//   comm.abort();                                                  // from any thread, on a failure
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace moat::cuda {

class nccl_group {
 public:
  // Creates one communicator per device (rank = index in `devices`). Throws model_error when
  // NCCL is missing from this build, a device is invalid, or ncclCommInitAll fails.
  explicit nccl_group(const std::vector<int32_t>& devices);
  ~nccl_group();
  nccl_group(const nccl_group&) = delete;
  nccl_group& operator=(const nccl_group&) = delete;

  int32_t world() const { return static_cast<int32_t>(comms_.size()); }

  // Element-wise sum over ranks of `data` ([n] f32 on rank's device), in place. Enqueued on
  // `stream`; every rank must call it with the same n in the same order. Throws model_error
  // (also after abort(), so a rank blocked behind a failed peer gets out).
  void all_reduce_sum(int32_t rank, float* data, size_t n, cudaStream_t stream);

  // out ([world][n] f32, rank-major) gets every rank's `in` ([n] f32).
  void all_gather(int32_t rank, const float* in, float* out, size_t n, cudaStream_t stream);

  // Aborts every communicator: collectives in flight on other threads return an error. After
  // it the group is unusable. Any thread; idempotent.
  void abort() noexcept;

 private:
  void check_rank(int32_t rank) const;
  std::vector<void*> comms_;  // ncclComm_t, opaque here so users need not include nccl.h
  std::atomic<bool> aborted_{false};
};

}  // namespace moat::cuda
