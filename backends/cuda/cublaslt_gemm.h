// lt_gemm: the prefill GEMM for 16-bit weights on tensor cores through cuBLASLt.
//   Y[tokens][out] (f32) = X[tokens][in] (f16|bf16) . W[out][in]^T (f16|bf16), f32 accumulate,
// all row-major as the engine stores them. cuBLASLt is column-major, so the call computes
// Y^T = W . X^T: A = W read transposed (op T, ld = in), B = X (op N, ld = in), D = Y (ld = out).
// The algorithm for each shape comes from cublasLtMatmulAlgoGetHeuristic within the workspace
// and is cached. Errors are engine::model_error ("cublasLt: <what>: <status>"), never an abort.
//
//   lt_gemm gemm(32u << 20);                       // 32 MiB workspace on the current device
//   if (prefer_lt_gemm(weight_format, n_tokens))
//     gemm.run(lt_type::bf16, x16, w.data, y, n_tokens, out, in, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

namespace moat::cuda {

enum class lt_type { f16, bf16 };

// When the tensor-core GEMM beats the fused GEMV kernel: 16-bit weights ("" as stored when the
// model is f16/bf16, "f16", "bf16") and enough tokens that the weights are reused; quantized
// formats keep the fused dequantize kernels (cuBLASLt cannot read them). 16 tokens: below it
// the GEMV (up to 8 tokens per pass) still reads the weights at most twice.
bool prefer_lt_gemm(const std::string& weight_format, int32_t tokens);

class lt_gemm {
 public:
  explicit lt_gemm(size_t workspace_bytes = size_t{32} << 20);  // throws model_error
  ~lt_gemm();
  lt_gemm(const lt_gemm&) = delete;
  lt_gemm& operator=(const lt_gemm&) = delete;

  // x, w: device, 16-bit values of `type`; y: device f32 [tokens][out]. Enqueued on stream.
  void run(lt_type type, const void* x, const void* w, float* y, int32_t tokens, int32_t out, int32_t in,
           cudaStream_t stream);

  size_t cached_plans() const { return plans_.size(); }

 private:
  struct plan;
  const plan& plan_for(lt_type type, int32_t tokens, int32_t out, int32_t in);

  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  size_t workspace_bytes_;
  std::map<std::tuple<int, int32_t, int32_t, int32_t>, plan*> plans_;  // owned
};

}  // namespace moat::cuda
