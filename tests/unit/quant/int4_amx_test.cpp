// The AMX int8 tiles of q4_0 and int4 (kernels_int4_amx.cpp) against the VNNI lanes they must
// equal bit for bit (same integer block sums, same float chain): every 4-bit format, row
// lengths with partial blocks, row counts around the 16-row tile, batches around the 16-row
// activation tile, and row splits as threads make them. Where the CPU (or the OS, or
// MOAT_CPU_AMX=0) gives no AMX int8 tiles, the comparison skips with the reason.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/quant/kernel_tables.h"
#include "cpu/quant/matmul.h"
#include "random_values.h"

namespace moat::cpu::quant {
namespace {

using quant_test::random_values;

TEST(int4_amx_dispatch, only_the_vnni_table_has_amx_int8_tiles_and_only_where_available) {
  const char* why = detail::int4_amx_unavailable();
  std::printf("[ amx int8 ] %s\n", why == nullptr ? "available" : why);
  const char* env = std::getenv("MOAT_CPU_AMX");
  if (env != nullptr && std::strcmp(env, "0") == 0) {
    EXPECT_STREQ(why, "MOAT_CPU_AMX=0");
  }
  if (isa_supported(isa::avx512_vnni)) {
    const dot_kernels* k = kernels_for(isa::avx512_vnni);
    EXPECT_EQ(k->gemm_q4_0_amx != nullptr, why == nullptr);
    EXPECT_EQ(k->gemm_int4_amx != nullptr, why == nullptr);
  }
  for (isa i : {isa::scalar, isa::avx2, isa::avx512}) {
    if (!isa_supported(i)) continue;
    EXPECT_EQ(kernels_for(i)->gemm_q4_0_amx, nullptr) << isa_name(i);
    EXPECT_EQ(kernels_for(i)->gemm_int4_amx, nullptr) << isa_name(i);
  }
}

TEST(int4_amx, equals_the_vnni_lanes_bit_for_bit) {
  const dot_kernels* amx =
      isa_supported(isa::avx512_vnni) ? kernels_for(isa::avx512_vnni) : nullptr;
  if (amx == nullptr || amx->gemm_q4_0_amx == nullptr) {
    const char* why = detail::int4_amx_unavailable();
    GTEST_SKIP() << "no AMX int8 tiles here: " << (amx == nullptr ? "no AVX-512 VNNI path" : why);
  }
  dot_kernels lanes = *amx;
  lanes.gemm_q4_0_amx = nullptr;
  lanes.gemm_int4_amx = nullptr;
  for (weight_format f : {weight_format::q4_0, weight_format::int4_g32, weight_format::int4_g64,
                          weight_format::int4_g128}) {
    for (size_t cols : {32u, 136u, 256u, 2080u}) {
      for (size_t rows : {1u, 5u, 16u, 17u, 33u}) {
        const std::vector<float> w =
            random_values(rows * cols, 300 + static_cast<uint32_t>(cols + rows));
        const quantized_matrix m = quantize_matrix(f, w.data(), rows, cols);
        for (size_t batch : {amx_int4_min_batch, size_t{33}, size_t{48}, size_t{97}}) {
          SCOPED_TRACE(std::string(weight_format_name(f)) + " cols " + std::to_string(cols) +
                       " rows " + std::to_string(rows) + " batch " + std::to_string(batch));
          const std::vector<float> x =
              random_values(batch * cols, 400 + static_cast<uint32_t>(cols + batch));
          std::vector<block_q8_0> xq(activation_blocks(f, cols, batch));
          prepare_activations(*amx, f, x.data(), batch, cols, xq.data());
          const size_t stride = rows + 2;
          std::vector<float> got(batch * stride, -5.0f), split(batch * stride, -5.0f),
              want(batch * stride, -5.0f);
          matmul_rows(*amx, m.view(), x.data(), xq.data(), batch, got.data(), stride, 0, rows);
          const size_t cut = rows / 3;  // rows split as threads would
          matmul_rows(*amx, m.view(), x.data(), xq.data(), batch, split.data(), stride, 0, cut);
          matmul_rows(*amx, m.view(), x.data(), xq.data(), batch, split.data(), stride, cut, rows);
          matmul_rows(lanes, m.view(), x.data(), xq.data(), batch, want.data(), stride, 0, rows);
          ASSERT_EQ(got, want);
          ASSERT_EQ(split, want);
        }
      }
    }
  }
}

}  // namespace
}  // namespace moat::cpu::quant
