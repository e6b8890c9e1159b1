// What an NCCL result code means for whoever reads the log: the codes are NCCL's public enum
// (ncclResult_t, checked against nccl.h in nccl_comm.cpp), the text says what usually causes
// it. No NCCL header here, so the wording is tested on machines without NCCL.
//
//   throw engine::model_error(nccl_error_text(r, "ncclAllReduce", ncclGetLastError(comm)));
#pragma once

#include <string>
#include <string_view>

namespace moat::cuda {

// "nccl: <what>: <meaning> (<name>)[: <detail>]".
std::string nccl_error_text(int code, std::string_view what, std::string_view detail = {});

}  // namespace moat::cuda
