// Scatters the new tokens' K and V rows into the paged pools: row i of k/v ([n][kv_dim]) goes
// to pool row rows[i] (= physical block * block_size + position % block_size), so a whole
// batch's cache writes are one launch.
//
//   moat::kernels::kv_write(k, v, rows, n, kv_dim, k_pool, v_pool, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace moat::kernels {

cudaError_t kv_write(const float* k, const float* v, const int32_t* rows, int32_t n, int32_t kv_dim, float* k_pool,
                     float* v_pool, cudaStream_t stream);

}  // namespace moat::kernels
