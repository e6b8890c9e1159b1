#include "nccl_comm.h"

#include <fmt/format.h>

#include <string>

#include "engine/model_error.h"
#include "nccl_errors.h"

#ifdef MOAT_HAVE_NCCL
#include <nccl.h>

namespace moat::cuda {

static_assert(ncclUnhandledCudaError == 1 && ncclSystemError == 2 && ncclInternalError == 3 &&
                  ncclInvalidArgument == 4 && ncclInvalidUsage == 5 && ncclRemoteError == 6 && ncclInProgress == 7,
              "nccl_errors.cpp names NCCL's result codes by value");

namespace {

ncclComm_t as_comm(void* p) { return static_cast<ncclComm_t>(p); }

void check(ncclResult_t r, ncclComm_t comm, const char* what) {
  if (r == ncclSuccess) return;
  const char* detail = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  throw engine::model_error(nccl_error_text(static_cast<int>(r), what, detail ? detail : ""));
}

}  // namespace

nccl_group::nccl_group(const std::vector<int32_t>& devices) {
  if (devices.empty()) throw engine::model_error("nccl: no devices given");
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    count = 0;
  }
  for (const int32_t d : devices) {
    if (d < 0 || d >= count)
      throw engine::model_error(fmt::format("nccl: device {} does not exist ({} visible)", d, count));
  }
  std::vector<ncclComm_t> comms(devices.size(), nullptr);
  std::vector<int> list(devices.begin(), devices.end());
  check(ncclCommInitAll(comms.data(), static_cast<int>(comms.size()), list.data()), nullptr, "ncclCommInitAll");
  comms_.assign(comms.begin(), comms.end());
}

nccl_group::~nccl_group() {
  for (void* c : comms_) {
    if (c == nullptr) continue;
    if (aborted_) continue;  // ncclCommAbort already freed it
    ncclCommDestroy(as_comm(c));
  }
}

void nccl_group::check_rank(int32_t rank) const {
  if (rank < 0 || rank >= world()) throw engine::model_error(fmt::format("nccl: rank {} of {}", rank, world()));
  if (aborted_) throw engine::model_error("nccl: the communicators were aborted after a failure on another rank");
}

void nccl_group::all_reduce_sum(int32_t rank, float* data, size_t n, cudaStream_t stream) {
  check_rank(rank);
  ncclComm_t c = as_comm(comms_[static_cast<size_t>(rank)]);
  check(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, c, stream), c, "ncclAllReduce");
}

void nccl_group::all_gather(int32_t rank, const float* in, float* out, size_t n, cudaStream_t stream) {
  check_rank(rank);
  ncclComm_t c = as_comm(comms_[static_cast<size_t>(rank)]);
  check(ncclAllGather(in, out, n, ncclFloat32, c, stream), c, "ncclAllGather");
}

void nccl_group::abort() noexcept {
  if (aborted_.exchange(true)) return;
  for (void* c : comms_) {
    if (c != nullptr) ncclCommAbort(as_comm(c));
  }
}

}  // namespace moat::cuda

#else  // built without NCCL: tensor_parallel > 1 is refused with a clear message

namespace moat::cuda {

nccl_group::nccl_group(const std::vector<int32_t>&) {
  throw engine::model_error("nccl: this build of the cuda backend has no NCCL (nccl.h/libnccl not found at build "
                            "time); tensor_parallel needs it");
}
nccl_group::~nccl_group() = default;
void nccl_group::check_rank(int32_t) const {}
void nccl_group::all_reduce_sum(int32_t, float*, size_t, cudaStream_t) {}
void nccl_group::all_gather(int32_t, const float*, float*, size_t, cudaStream_t) {}
void nccl_group::abort() noexcept {}

}  // namespace moat::cuda

#endif
