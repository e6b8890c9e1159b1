// Products on quantized weights (the formats of engine/quant) for the CPU, with AVX2,
// AVX-512 and AVX-512 VNNI paths chosen at run time and the scalar references beside them.
// Activations are quantized to Q8_0 for the int8/int4 formats (integer dot products); NF4
// multiplies float activations (its codes are not integers).
//
//   const auto& k = moat::cpu::quant::kernels();          // best ISA of this CPU, chosen once
//   std::vector<block_q8_0> xq(q8_0_blocks(cols));
//   k.quantize_q8_0(x, cols, xq.data());                  // x: [cols] activations
//   gemv_q4_0(k, w, rows, cols, xq.data(), y, 0, rows);   // w: rows * q4_0_blocks(cols) blocks
//
// All functions are pure: raw pointers in, results out, no allocation, no threads. Callers
// split rows across their own thread pool with [row_begin, row_end).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quant/int4.h"
#include "engine/quant/int8.h"
#include "engine/quant/nf4.h"

namespace moat::cpu::quant {

using engine::quant::block_q4_0;
using engine::quant::block_q8_0;

enum class isa { scalar, avx2, avx512, avx512_vnni };

const char* isa_name(isa i);
// Whether this CPU runs the path (and this build has it).
bool isa_supported(isa i);
// The fastest supported path. MOAT_CPU_ISA=scalar|avx2|avx512|avx512_vnni lowers it (for
// benchmarks and debugging); an unsupported or unknown value is ignored.
isa best_isa();

// One weight row against one activation vector of n values (any n; rows are padded to whole
// blocks as the formats define).
struct dot_kernels {
  isa which;
  float (*q8_0_q8_0)(const block_q8_0* w, const block_q8_0* a, size_t n);
  float (*q4_0_q8_0)(const block_q4_0* w, const block_q8_0* a, size_t n);
  float (*int8_q8_0)(const int8_t* w, float scale, const block_q8_0* a, size_t n);
  float (*int4_q8_0)(const uint8_t* w, const float* scales, size_t group, const block_q8_0* a, size_t n);
  // Flat elements [start, start + n) of an NF4 tensor against x [n].
  float (*nf4_f32)(const uint8_t* packed, const float* absmax, size_t blocksize, size_t start, const float* x,
                   size_t n);
  void (*quantize_q8_0)(const float* x, size_t n, block_q8_0* out);

  // Matrix-matrix tiles: y[b * y_stride + r] = row r of W . xq[b] for r in [row_begin,
  // row_end), b < batch, each weight block loaded (and unpacked) once for a tile of activation
  // rows (see gemm_avx512.inc). Each output is computed the same way whatever the batch and
  // the row split. Null where the path has none: the gemm_* / matmul_rows entry points then
  // fall back to one dot product per (row, activation row).
  void (*gemm_q8_0)(const block_q8_0* w, size_t cols, const block_q8_0* xq, size_t batch, float* y, size_t y_stride,
                    size_t row_begin, size_t row_end);
  void (*gemm_q4_0)(const block_q4_0* w, size_t cols, const block_q8_0* xq, size_t batch, float* y, size_t y_stride,
                    size_t row_begin, size_t row_end);
  // w: [rows, cols] int8, scales: [rows]
  void (*gemm_int8)(const int8_t* w, const float* scales, size_t cols, const block_q8_0* xq, size_t batch, float* y,
                    size_t y_stride, size_t row_begin, size_t row_end);
  // w: rows * int4_row_bytes(cols, group) bytes, scales: rows * int4_row_groups(cols, group)
  void (*gemm_int4)(const uint8_t* w, const float* scales, size_t group, size_t cols, const block_q8_0* xq,
                    size_t batch, float* y, size_t y_stride, size_t row_begin, size_t row_end);
  // NF4 with blocks of 64 and cols % 64 == 0 (rows start on a block); x: [batch, cols] floats.
  void (*gemm_nf4)(const uint8_t* packed, const float* absmax, size_t cols, const float* x, size_t batch, float* y,
                   size_t y_stride, size_t row_begin, size_t row_end);
  // The same product with weights and activations rounded to bf16 and f32 accumulation (2x the
  // MACs of the f32 tiles; each output within ~2 * 2^-8 * sum |w||x| of gemm_nf4's). Null where
  // the CPU has no AVX512_BF16; matmul_rows uses it from nf4_bf16_min_batch activation rows on.
  void (*gemm_nf4_bf16)(const uint8_t* packed, const float* absmax, size_t cols, const float* x, size_t batch,
                        float* y, size_t y_stride, size_t row_begin, size_t row_end);
  // The same products on AMX tiles (tdpbf16ps; only the f32 summation order differs from
  // gemm_nf4_bf16, so the same bound). Null where the CPU has no AMX-BF16, the OS refuses tile
  // data, or MOAT_CPU_AMX=0; where set, matmul_rows prefers it to gemm_nf4_bf16.
  void (*gemm_nf4_amx)(const uint8_t* packed, const float* absmax, size_t cols, const float* x,
                       size_t batch, float* y, size_t y_stride, size_t row_begin, size_t row_end);
  // q4_0 and int4 on AMX int8 tiles: the same values as gemm_q4_0 / gemm_int4 bit for bit (the
  // VNNI lanes' arithmetic, only the exact integer block sums are formed differently), faster
  // from a few activation tiles on; matmul_rows uses them from amx_int4_min_batch rows. Only in
  // the AVX-512 VNNI table, where the CPU has AMX-INT8 and MOAT_CPU_AMX is not 0.
  void (*gemm_q4_0_amx)(const block_q4_0* w, size_t cols, const block_q8_0* xq, size_t batch,
                        float* y, size_t y_stride, size_t row_begin, size_t row_end);
  void (*gemm_int4_amx)(const uint8_t* w, const float* scales, size_t group, size_t cols,
                        const block_q8_0* xq, size_t batch, float* y, size_t y_stride,
                        size_t row_begin, size_t row_end);
};

// Below this batch NF4 stays on the f32 tiles (decode-bound there, and bit-for-bit batch
// independent); from it on the AMX tiles where gemm_nf4_amx is set, else the bf16 tiles where
// gemm_nf4_bf16 is.
inline constexpr size_t nf4_bf16_min_batch = 8;
// From this batch on q4_0 and int4 take the AMX tiles where the table has them (same values
// either way; below it the VNNI lanes are as fast).
inline constexpr size_t amx_int4_min_batch = 32;

// The table of one path, or nullptr when isa_supported(i) is false.
const dot_kernels* kernels_for(isa i);
// The table of best_isa().
const dot_kernels& kernels();

// y[r] = row r of W . x for r in [row_begin, row_end). W is [rows, cols]; xq is x quantized with
// k.quantize_q8_0 (q8_0_blocks(cols) blocks). Where the path has tiles, gemv is the gemm tile
// with batch 1 (bit for bit the same as a gemm row).
void gemv_q8_0(const dot_kernels& k, const block_q8_0* w, size_t cols, const block_q8_0* xq, float* y,
               size_t row_begin, size_t row_end);
void gemv_q4_0(const dot_kernels& k, const block_q4_0* w, size_t cols, const block_q8_0* xq, float* y,
               size_t row_begin, size_t row_end);
void gemv_int8(const dot_kernels& k, const engine::quant::int8_matrix& w, const block_q8_0* xq, float* y,
               size_t row_begin, size_t row_end);
// w: rows * int4_row_bytes(cols, group) bytes, scales: rows * int4_row_groups(cols, group).
void gemv_int4(const dot_kernels& k, const uint8_t* w, const float* scales, size_t cols, size_t group,
               const block_q8_0* xq, float* y, size_t row_begin, size_t row_end);
// W: the NF4 tensor of a [rows, cols] matrix (flat, bitsandbytes layout); x: [cols] floats.
void gemv_nf4(const dot_kernels& k, const uint8_t* packed, const float* absmax, size_t blocksize, size_t cols,
              const float* x, float* y, size_t row_begin, size_t row_end);

// Matrix-matrix: Y[b][r] = row r of W . X[b] for a batch of `batch` activation rows, each
// weight row read once for the whole batch. xq: batch * q8_0_blocks(cols) blocks; y: [batch,
// rows] with row stride y_stride.
void gemm_q8_0(const dot_kernels& k, const block_q8_0* w, size_t cols, const block_q8_0* xq, size_t batch,
               float* y, size_t y_stride, size_t row_begin, size_t row_end);
void gemm_q4_0(const dot_kernels& k, const block_q4_0* w, size_t cols, const block_q8_0* xq, size_t batch,
               float* y, size_t y_stride, size_t row_begin, size_t row_end);

}  // namespace moat::cpu::quant
