// NF4 against bitsandbytes to the bit: goldens made by tools/make_bnb_goldens.py from
// bitsandbytes' own quantize_4bit / dequantize_4bit (CPU path), plain and double-quantized.
#include <gtest/gtest.h>

#include <bit>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

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
