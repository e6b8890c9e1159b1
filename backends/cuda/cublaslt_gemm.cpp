#include "cublaslt_gemm.h"

#include <cublasLt.h>
#include <fmt/format.h>

#include "cuda_memory.h"
#include "engine/model_error.h"

namespace moat::cuda {

namespace {

void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw engine::model_error(fmt::format("cublasLt: {}: {}", what, cublasLtGetStatusString(s)));
}

cublasLtHandle_t as_handle(void* p) { return static_cast<cublasLtHandle_t>(p); }

}  // namespace

bool prefer_lt_gemm(const std::string& weight_format, int32_t tokens) {
  const bool sixteen_bit = weight_format == "f16" || weight_format == "bf16";
  return sixteen_bit && tokens >= 16;
}

// Descriptors and the chosen algorithm for one (type, tokens, out, in).
struct lt_gemm::plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~plan() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

lt_gemm::lt_gemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  cublasLtHandle_t h = nullptr;
  lt_check(cublasLtCreate(&h), "cublasLtCreate");
  handle_ = h;
  if (workspace_bytes_ > 0) {
    const cudaError_t e = cudaMalloc(&workspace_, workspace_bytes_);
    if (e != cudaSuccess) {
      cublasLtDestroy(h);
      handle_ = nullptr;
      check(e, "cudaMalloc (cuBLASLt workspace)");
    }
  }
}

lt_gemm::~lt_gemm() {
  for (auto& [key, p] : plans_) delete p;
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(as_handle(handle_));
}

const lt_gemm::plan& lt_gemm::plan_for(lt_type type, int32_t tokens, int32_t out, int32_t in) {
  const auto key = std::make_tuple(static_cast<int>(type), tokens, out, in);
  if (auto it = plans_.find(key); it != plans_.end()) return *it->second;
  auto p = std::make_unique<plan>();
  const cudaDataType_t t16 = type == lt_type::bf16 ? CUDA_R_16BF : CUDA_R_16F;
  lt_check(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  lt_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof transa), "set TRANSA");
  lt_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof transb), "set TRANSB");
  // Column-major views of the row-major buffers: W is (in x out), X is (in x tokens), Y is (out x tokens).
  lt_check(cublasLtMatrixLayoutCreate(&p->a, t16, in, out, in), "layout W");
  lt_check(cublasLtMatrixLayoutCreate(&p->b, t16, in, tokens, in), "layout X");
  lt_check(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_32F, out, tokens, out), "layout Y");

  cublasLtMatmulPreference_t pref = nullptr;
  lt_check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t s1 = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                 &workspace_bytes_, sizeof workspace_bytes_);
  const cublasStatus_t s2 = s1 != CUBLAS_STATUS_SUCCESS
                                ? s1
                                : cublasLtMatmulAlgoGetHeuristic(as_handle(handle_), p->op, p->a, p->b, p->d, p->d,
                                                                 pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  lt_check(s2, "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0)
    throw engine::model_error(
        fmt::format("cublasLt: no algorithm for a {}x{}x{} GEMM within a {} byte workspace", tokens, out, in, workspace_bytes_));
  p->algo = result.algo;
  const plan& ref = *p;
  plans_[key] = p.release();
  return ref;
}

void lt_gemm::run(lt_type type, const void* x, const void* w, float* y, int32_t tokens, int32_t out, int32_t in,
                  cudaStream_t stream) {
  if (tokens <= 0 || out <= 0 || in <= 0) return;
  const plan& p = plan_for(type, tokens, out, in);
  const float alpha = 1.0f, beta = 0.0f;
  lt_check(cublasLtMatmul(as_handle(handle_), p.op, &alpha, w, p.a, x, p.b, &beta, y, p.d, y, p.d, &p.algo, workspace_,
                          workspace_bytes_, stream),
           "cublasLtMatmul");
}

}  // namespace moat::cuda
