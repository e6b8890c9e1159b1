// nccl_error_text (backends/cuda/nccl_errors.h): every NCCL result code gets its name and a
// cause a reader can act on; unknown codes are said to be unknown.
#include <gtest/gtest.h>

#include "nccl_errors.h"

namespace moat::cuda {
namespace {

TEST(NcclErrors, EveryCodeIsNamed) {
  const char* names[] = {"ncclSuccess",        "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError",
                         "ncclInvalidArgument", "ncclInvalidUsage",      "ncclRemoteError", "ncclInProgress"};
  for (int code = 0; code < 8; ++code) {
    const std::string t = nccl_error_text(code, "ncclAllReduce");
    EXPECT_EQ(t.rfind("nccl: ncclAllReduce: ", 0), 0u) << t;
    EXPECT_NE(t.find(std::string("(") + names[code] + ")"), std::string::npos) << t;
  }
  EXPECT_NE(nccl_error_text(2, "ncclCommInitAll").find("/dev/shm"), std::string::npos);
  EXPECT_NE(nccl_error_text(42, "x").find("unknown result code (unknown)"), std::string::npos);
}

TEST(NcclErrors, DetailFromNcclIsAppended) {
  EXPECT_EQ(nccl_error_text(6, "ncclAllReduce", "peer 1 lost"),
            "nccl: ncclAllReduce: a peer failed (another rank or a link between the GPUs) (ncclRemoteError): peer 1 lost");
}

}  // namespace
}  // namespace moat::cuda
