// NF4 against bitsandbytes to the bit: goldens made by tools/make_bnb_goldens.py from
// bitsandbytes' own quantize_4bit / dequantize_4bit (CPU path), plain and double-quantized.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/quant/bnb_checkpoint.h"
#include "engine/quant/nf4.h"
#include "golden_file.h"

namespace moat::engine::quant {
namespace {

const std::string golden_dir = std::string(MOAT_SOURCE_DIR) + "/tests/golden/quant/";

// Compares floats by their bits (so -0.0 != 0.0 and the test means "bit-exact").
void expect_same_bits(const std::vector<float>& want, const float* got, size_t n, const std::string& what) {
  ASSERT_EQ(want.size(), n) << what;
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::bit_cast<uint32_t>(want[i]) != std::bit_cast<uint32_t>(got[i])) {
      if (++mismatches <= 5) ADD_FAILURE() << what << "[" << i << "]: want " << want[i] << " got " << got[i];
    }
  }
  EXPECT_EQ(mismatches, 0u) << what;
}

class nf4_golden : public testing::TestWithParam<std::string> {};

TEST_P(nf4_golden, matches_bitsandbytes) {
  const auto g = quant_test::read_golden(golden_dir + "nf4_" + GetParam() + ".bin");
  const std::vector<float>& x = g.at("input").f32;
  const size_t n = x.size();

  // First level: packed codes and absmax.
  const nf4_tensor t = quantize_nf4(x.data(), n);
  EXPECT_EQ(t.packed, g.at("packed").u8);
  expect_same_bits(g.at("absmax").f32, t.absmax.data(), t.absmax.size(), "absmax");

  std::vector<float> y(n);
  dequantize_nf4(g.at("packed").u8.data(), g.at("absmax").f32.data(), n, nf4_blocksize, y.data());
  expect_same_bits(g.at("dequant").f32, y.data(), n, "dequant");

  // Double quantization. The mean may differ from torch's float32 mean by an ulp (its
  // summation order); from bitsandbytes' offset on, everything is bit-exact.
  const float want_offset = g.at("dq_offset").f32.at(0);
  const nf4_double_quant own = double_quantize(t.absmax.data(), t.absmax.size());
  EXPECT_LE(std::abs(static_cast<int64_t>(std::bit_cast<uint32_t>(own.offset)) -
                     static_cast<int64_t>(std::bit_cast<uint32_t>(want_offset))),
            1)
      << "offset want " << want_offset << " got " << own.offset;
  const nf4_double_quant dq = double_quantize(t.absmax.data(), t.absmax.size(), want_offset);
  EXPECT_EQ(dq.codes, g.at("dq_absmax").u8);
  expect_same_bits(g.at("dq_absmax2").f32, dq.absmax2.data(), dq.absmax2.size(), "absmax2");
  expect_same_bits(g.at("dq_code").f32, dq.code.data(), dq.code.size(), "nested code map");

  // Dequantize from the golden's own (checkpoint) arrays, as a loader does.
  nf4_double_quant from_file;
  from_file.codes = g.at("dq_absmax").u8;
  from_file.absmax2 = g.at("dq_absmax2").f32;
  from_file.offset = g.at("dq_offset").f32.at(0);
  std::copy(g.at("dq_code").f32.begin(), g.at("dq_code").f32.end(), from_file.code.begin());
  std::vector<float> absmax(from_file.codes.size());
  dequantize_absmax(from_file, absmax.data());
  dequantize_nf4(g.at("packed").u8.data(), absmax.data(), n, nf4_blocksize, y.data());
  expect_same_bits(g.at("dq_dequant").f32, y.data(), n, "double-quantized dequant");
}

INSTANTIATE_TEST_SUITE_P(cases, nf4_golden, testing::Values("64x64", "7x100", "3x33", "40x520", "1x17000"));

TEST(nf4_golden_map, dynamic_map_matches_bitsandbytes) {
  const auto g = quant_test::read_golden(golden_dir + "dynamic_map.bin");
  expect_same_bits(g.at("code").f32, dynamic_map().data(), 256, "dynamic map");
}

}  // namespace
}  // namespace moat::engine::quant

namespace moat::engine::quant {
namespace {

// The checkpoint form: the quant_state JSON transformers saves, and the absmax rebuilt from
// the stored tensors, then the weights dequantized as bitsandbytes does.
TEST_P(nf4_golden, reads_the_checkpoint_form) {
  const auto g = quant_test::read_golden(golden_dir + "nf4_" + GetParam() + ".bin");
  const std::vector<uint8_t>& json = g.at("ckpt_quant_state").u8;
  const bnb_nf4_state st = parse_bnb_quant_state({reinterpret_cast<const char*>(json.data()), json.size()});
  EXPECT_EQ(st.quant_type, "nf4");
  EXPECT_EQ(st.blocksize, 64u);
  EXPECT_EQ(st.dtype, "float32");
  ASSERT_EQ(st.shape.size(), 2u);
  EXPECT_EQ(st.shape[0], static_cast<size_t>(g.at("shape").f32[0]));
  EXPECT_EQ(st.shape[1], static_cast<size_t>(g.at("shape").f32[1]));
  EXPECT_TRUE(st.nested);
  EXPECT_EQ(st.nested_blocksize, 256u);
  EXPECT_EQ(std::bit_cast<uint32_t>(st.nested_offset), std::bit_cast<uint32_t>(g.at("dq_offset").f32.at(0)));

  const auto& codes = g.at("dq_absmax").u8;
  const auto& nested = g.at("dq_absmax2").f32;
  const std::vector<float> absmax = bnb_absmax(st, codes.data(), nullptr, codes.size(), nested.data(), nested.size(),
                                               g.at("dq_code").f32.data(), g.at("ckpt_quant_map").f32.data());
  std::vector<float> y(st.numel());
  dequantize_nf4(g.at("packed").u8.data(), absmax.data(), y.size(), st.blocksize, y.data());
  expect_same_bits(g.at("dq_dequant").f32, y.data(), y.size(), "checkpoint dequant");

  // Sizes that do not fit the shape are refused, not read past.
  EXPECT_THROW(bnb_absmax(st, codes.data(), nullptr, codes.size() - 1, nested.data(), nested.size(),
                          g.at("dq_code").f32.data(), nullptr),
               std::invalid_argument);
}

TEST(bnb_quant_state, refuses_what_it_cannot_read) {
  EXPECT_THROW(parse_bnb_quant_state("{"), std::invalid_argument);
  EXPECT_THROW(parse_bnb_quant_state(R"({"quant_type":"fp4","blocksize":64,"dtype":"float16","shape":[2,2]})"),
               std::invalid_argument);
  EXPECT_THROW(parse_bnb_quant_state(R"({"quant_type":"nf4","blocksize":48,"dtype":"float16","shape":[2,2]})"),
               std::invalid_argument);
  EXPECT_THROW(parse_bnb_quant_state(R"({"quant_type":"nf4","blocksize":64,"dtype":"float16"})"),
               std::invalid_argument);
  EXPECT_THROW(parse_bnb_quant_state(
                   R"({"quant_type":"nf4","blocksize":64,"dtype":"float16","shape":[4294967296,4294967296]})"),
               std::invalid_argument);
  EXPECT_THROW(parse_bnb_quant_state(R"({"quant_type":"nf4","blocksize":64,"dtype":"float16","shape":[]})"),
               std::invalid_argument);
  EXPECT_THROW(parse_bnb_quant_state(R"({"quant_type":"nf4","blocksize":64,"dtype":"float16","shape":[2,2],)"
                                     R"("nested_offset":1.5,"nested_blocksize":0})"),
               std::invalid_argument);
  const bnb_nf4_state plain =
      parse_bnb_quant_state(R"({"quant_type":"nf4","blocksize":64,"dtype":"bfloat16","shape":[3,128]})");
  EXPECT_FALSE(plain.nested);
  EXPECT_EQ(plain.numel(), 384u);
  const std::vector<float> f32 = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  EXPECT_EQ(bnb_absmax(plain, nullptr, f32.data(), 6, nullptr, 0, nullptr, nf4_code.data()), f32);
}

}  // namespace
}  // namespace moat::engine::quant

namespace moat::engine::quant {
namespace {

// The second-level quantizer on its own, across every decision boundary of the dynamic map.
TEST(nf4_golden_map, blockwise_8bit_matches_bitsandbytes_at_boundaries) {
  const auto g = quant_test::read_golden(golden_dir + "blockwise8.bin");
  const std::vector<float>& x = g.at("input").f32;
  std::vector<uint8_t> codes(x.size());
  std::vector<float> absmax((x.size() + 255) / 256);
  quantize_blockwise_8bit(x.data(), x.size(), 256, dynamic_map(), codes.data(), absmax.data());
  expect_same_bits(g.at("absmax").f32, absmax.data(), absmax.size(), "absmax");
  const std::vector<uint8_t>& want = g.at("codes").u8;
  ASSERT_EQ(want.size(), codes.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < codes.size(); ++i) {
    if (want[i] != codes[i] && ++mismatches <= 5) ADD_FAILURE() << "code[" << i << "] want " << int(want[i]) << " got " << int(codes[i]);
  }
  EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace moat::engine::quant

namespace moat::engine::quant {
namespace {

// bitsandbytes 8-bit (LLM.int8) row-wise weights: quantize and dequantize to the bit, and the
// int8 per-channel view the kernels read.
TEST(bnb_int8_golden, matches_bitsandbytes) {
  const auto g = quant_test::read_golden(golden_dir + "int8_rowwise.bin");
  const size_t rows = static_cast<size_t>(g.at("shape").f32[0]);
  const size_t cols = static_cast<size_t>(g.at("shape").f32[1]);
  const std::vector<float>& x = g.at("input").f32;
  ASSERT_EQ(x.size(), rows * cols);
  std::vector<int8_t> q(rows * cols);
  std::vector<float> scb(rows);
  for (size_t r = 0; r < rows; ++r) quantize_bnb_int8_row(x.data() + r * cols, cols, q.data() + r * cols, &scb[r]);
  const std::vector<uint8_t>& want_cb = g.at("cb").u8;
  ASSERT_EQ(want_cb.size(), q.size());
  for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(static_cast<uint8_t>(q[i]), want_cb[i]) << i;
  expect_same_bits(g.at("scb").f32, scb.data(), rows, "SCB");
  std::vector<float> y(rows * cols);
  dequantize_bnb_int8(reinterpret_cast<const int8_t*>(want_cb.data()), g.at("scb").f32.data(), rows, cols, y.data());
  expect_same_bits(g.at("dequant").f32, y.data(), y.size(), "int8 dequant");
  // moat's int8 per channel reads the same weights: scale = SCB / 127.
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_NEAR(bnb_int8_scale(scb[i / cols]) * q[i], y[i], 1e-6f * std::fabs(y[i]) + 1e-12f);
  }
}

}  // namespace
}  // namespace moat::engine::quant
