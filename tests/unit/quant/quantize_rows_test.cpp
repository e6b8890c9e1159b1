// quantize_rows: a matrix quantized on several threads is bit for bit the matrix quantized by the
// serial per-row loop (int8, int4 groups of 64) or the whole-tensor quantize_nf4 call, on shapes
// whose rows are not a multiple of any chunk or block (nf4 chunks must start on a 64-block of
// the flattened matrix); the fill callback sees each row exactly once, an odd nf4 row length is
// refused, and an exception from fill reaches the caller.
#include "engine/quant/quantize_rows.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/quant/int4.h"
#include "engine/quant/int8.h"
#include "engine/quant/nf4.h"
#include "random_values.h"

namespace moat::engine::quant {
namespace {

struct quantized {
  std::vector<uint8_t> data;
  std::vector<float> scales;
};

// The serial reference: what cpu::quant::quantize_matrix does for each format.
quantized reference(row_format f, const std::vector<float>& w, size_t rows, size_t cols) {
  quantized q{std::vector<uint8_t>(quantized_bytes(f, rows, cols)), std::vector<float>(quantized_scales(f, rows, cols))};
  switch (f) {
    case row_format::int8:
      for (size_t r = 0; r < rows; ++r) {
        quantize_int8_row(w.data() + r * cols, cols, reinterpret_cast<int8_t*>(q.data.data()) + r * cols, &q.scales[r]);
      }
      break;
    case row_format::int4_g64: {
      const size_t rb = int4_row_bytes(cols, 64), rg = int4_row_groups(cols, 64);
      for (size_t r = 0; r < rows; ++r) {
        quantize_int4_row(w.data() + r * cols, cols, 64, q.data.data() + r * rb, q.scales.data() + r * rg);
      }
      break;
    }
    case row_format::nf4: {
      nf4_tensor t = quantize_nf4(w.data(), rows * cols);
      q.data = std::move(t.packed);
      q.scales = std::move(t.absmax);
      break;
    }
  }
  return q;
}

quantized threaded(row_format f, const std::vector<float>& w, size_t rows, size_t cols, unsigned threads,
                   std::vector<std::atomic<int>>* seen = nullptr) {
  // Filled with a pattern, so a byte the quantization never writes shows up as a difference.
  quantized q{std::vector<uint8_t>(quantized_bytes(f, rows, cols), 0xa5),
              std::vector<float>(quantized_scales(f, rows, cols), -3.0f)};
  quantize_rows(
      f, rows, cols,
      [&](size_t r0, size_t r1, float* out) {
        ASSERT_LT(r0, r1);
        ASSERT_LE(r1, rows);
        std::memcpy(out, w.data() + r0 * cols, (r1 - r0) * cols * sizeof(float));
        if (seen != nullptr) {
          for (size_t r = r0; r < r1; ++r) ++(*seen)[r];
        }
      },
      q.data.data(), q.scales.data(), threads);
  return q;
}

TEST(quantize_rows, threads_give_the_serial_bytes) {
  struct shape {
    size_t rows, cols;
  };
  // 70 columns: nf4 chunks start every 32 rows; 4097 rows of 16: more than one chunk per thread.
  for (const shape s : {shape{1, 64}, shape{100, 70}, shape{33, 2048}, shape{4097, 16}, shape{7, 130}}) {
    const std::vector<float> w = quant_test::random_values(
        s.rows * s.cols, static_cast<uint32_t>(s.rows * 31 + s.cols), 0.05f);
    for (row_format f : {row_format::int8, row_format::int4_g64, row_format::nf4}) {
      SCOPED_TRACE(::testing::Message() << "format " << static_cast<int>(f) << " shape " << s.rows << "x" << s.cols);
      const quantized want = reference(f, w, s.rows, s.cols);
      for (unsigned threads : {0u, 1u, 2u, 5u, 64u}) {
        std::vector<std::atomic<int>> seen(s.rows);
        const quantized got = threaded(f, w, s.rows, s.cols, threads, &seen);
        EXPECT_EQ(got.data, want.data) << threads << " threads";
        ASSERT_EQ(got.scales.size(), want.scales.size());
        EXPECT_EQ(std::memcmp(got.scales.data(), want.scales.data(), want.scales.size() * sizeof(float)), 0)
            << threads << " threads";
        for (size_t r = 0; r < s.rows; ++r) ASSERT_EQ(seen[r].load(), 1) << "row " << r;
      }
    }
  }
}

TEST(quantize_rows, output_sizes) {
  EXPECT_EQ(quantized_bytes(row_format::int8, 3, 70), 210u);
  EXPECT_EQ(quantized_scales(row_format::int8, 3, 70), 3u);
  EXPECT_EQ(quantized_bytes(row_format::int4_g64, 3, 70), 3u * 64);  // two groups of 64 per row
  EXPECT_EQ(quantized_scales(row_format::int4_g64, 3, 70), 6u);
  EXPECT_EQ(quantized_bytes(row_format::nf4, 3, 70), 105u);
  EXPECT_EQ(quantized_scales(row_format::nf4, 3, 70), 4u);  // 210 flat values in blocks of 64
}

TEST(quantize_rows, refuses_an_odd_nf4_row_and_passes_fill_errors_on) {
  std::vector<uint8_t> d(64);
  std::vector<float> s(4);
  auto fill = [](size_t, size_t, float*) {};
  EXPECT_THROW(quantize_rows(row_format::nf4, 2, 5, fill, d.data(), s.data(), 2), std::invalid_argument);
  std::vector<uint8_t> big(quantized_bytes(row_format::int8, 5000, 64));
  std::vector<float> big_s(5000);
  auto failing = [](size_t r0, size_t r1, float* out) {
    if (r0 > 2000) throw std::runtime_error("cannot read row");
    std::memset(out, 0, (r1 - r0) * 64 * sizeof(float));
  };
  EXPECT_THROW(quantize_rows(row_format::int8, 5000, 64, failing, big.data(), big_s.data(), 3), std::runtime_error);
}

}  // namespace
}  // namespace moat::engine::quant
