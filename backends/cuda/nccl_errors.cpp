#include "nccl_errors.h"

#include <fmt/format.h>

namespace moat::cuda {

std::string nccl_error_text(int code, std::string_view what, std::string_view detail) {
  const char* name = "unknown";
  const char* meaning = "NCCL failed with an unknown result code";
  switch (code) {
    case 0:
      name = "ncclSuccess";
      meaning = "no error";
      break;
    case 1:
      name = "ncclUnhandledCudaError";
      meaning = "a CUDA call inside NCCL failed (device lost, out of memory, or a kernel error earlier on this device)";
      break;
    case 2:
      name = "ncclSystemError";
      meaning = "a system call failed (in containers often a /dev/shm too small for NCCL's buffers; give the "
                "container --shm-size=1g or more)";
      break;
    case 3:
      name = "ncclInternalError";
      meaning = "NCCL hit an internal error (a bug in NCCL, or memory corruption)";
      break;
    case 4:
      name = "ncclInvalidArgument";
      meaning = "an argument was invalid (a null buffer, a device index out of range, a count mismatch)";
      break;
    case 5:
      name = "ncclInvalidUsage";
      meaning = "NCCL was called the wrong way (ranks issuing different collectives, or a communicator used after "
                "an abort)";
      break;
    case 6:
      name = "ncclRemoteError";
      meaning = "a peer failed (another rank or a link between the GPUs)";
      break;
    case 7:
      name = "ncclInProgress";
      meaning = "a non-blocking operation has not completed";
      break;
    default:
      break;
  }
  std::string out = fmt::format("nccl: {}: {} ({})", what, meaning, name);
  if (!detail.empty()) out += fmt::format(": {}", detail);
  return out;
}

}  // namespace moat::cuda
