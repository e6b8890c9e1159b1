#include "engine/quant/quantize_rows.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/quant/int4.h"
#include "engine/quant/int8.h"
#include "engine/quant/nf4.h"

namespace moat::engine::quant {

namespace {

constexpr size_t int4_group = 64;
// About 256 KiB of f32 scratch per chunk: stays in L2 between the conversion and the
// quantization, and a 32000-row lm_head still makes ~1000 chunks to balance over threads.
constexpr size_t chunk_elems = size_t{64} << 10;

// Rows per chunk. nf4 blocks run over the flattened matrix, so a chunk must start on a block:
// r0 * cols a multiple of 64, i.e. r0 a multiple of 64 / gcd(cols, 64).
size_t chunk_rows(row_format f, size_t cols) {
  const size_t step = f == row_format::nf4 ? nf4_blocksize / std::gcd(cols, nf4_blocksize) : 1;
  const size_t want = std::max<size_t>(1, chunk_elems / std::max<size_t>(cols, 1));
  return std::max(step, want / step * step);
}

// Quantizes rows [r0, r1) whose f32 values are in `values`.
void quantize_chunk(row_format f, size_t r0, size_t r1, size_t cols, const float* values, uint8_t* data,
                    float* scales) {
  switch (f) {
    case row_format::int8:
      for (size_t r = r0; r < r1; ++r) {
        quantize_int8_row(values + (r - r0) * cols, cols, reinterpret_cast<int8_t*>(data) + r * cols, scales + r);
      }
      return;
    case row_format::int4_g64: {
      const size_t rb = int4_row_bytes(cols, int4_group), rg = int4_row_groups(cols, int4_group);
      for (size_t r = r0; r < r1; ++r) {
        quantize_int4_row(values + (r - r0) * cols, cols, int4_group, data + r * rb, scales + r * rg);
      }
      return;
    }
    case row_format::nf4: {
      const size_t start = r0 * cols;  // a multiple of 64 (chunk_rows), hence even
      quantize_nf4(values, (r1 - r0) * cols, nf4_blocksize, data + start / 2, scales + start / nf4_blocksize);
      return;
    }
  }
}

}  // namespace

size_t quantized_bytes(row_format f, size_t rows, size_t cols) {
  switch (f) {
    case row_format::int8: return rows * cols;
    case row_format::int4_g64: return rows * int4_row_bytes(cols, int4_group);
    case row_format::nf4: return (rows * cols + 1) / 2;
  }
  return 0;
}

size_t quantized_scales(row_format f, size_t rows, size_t cols) {
  switch (f) {
    case row_format::int8: return rows;
    case row_format::int4_g64: return rows * int4_row_groups(cols, int4_group);
    case row_format::nf4: return nf4_blocks(rows * cols);
  }
  return 0;
}

void quantize_rows(row_format f, size_t rows, size_t cols, const row_fill& fill, uint8_t* data, float* scales,
                   unsigned threads) {
  if (f == row_format::nf4 && cols % 2 != 0) throw std::invalid_argument("nf4 needs an even row length");
  if (rows == 0 || cols == 0) return;
  const size_t per_chunk = chunk_rows(f, cols);
  const size_t n_chunks = (rows + per_chunk - 1) / per_chunk;
  const unsigned n_threads = static_cast<unsigned>(std::clamp<size_t>(threads, 1, n_chunks));

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  // Each worker claims chunks from a shared counter (a thread slowed by the shared machine
  // does not hold the others back) into its own scratch.
  auto work = [&] {
    std::unique_ptr<float[]> values(new float[per_chunk * cols]);
    try {
      for (size_t c = next++; c < n_chunks && !failed.load(std::memory_order_relaxed); c = next++) {
        const size_t r0 = c * per_chunk, r1 = std::min(rows, r0 + per_chunk);
        fill(r0, r1, values.get());
        quantize_chunk(f, r0, r1, cols, values.get(), data, scales);
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(n_threads - 1);
  try {
    for (unsigned t = 1; t < n_threads; ++t) pool.emplace_back(work);
  } catch (...) {
    // No thread to be had: the threads already started and this one finish the work.
  }
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace moat::engine::quant
