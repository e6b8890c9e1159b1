#include "engine/tensor.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "engine/model_error.h"

namespace moat::engine {

namespace {

constexpr int64_t block_elems = 32;  // Q8_0 and Q4_0 block size
constexpr size_t q8_0_block_bytes = 2 + 32;
constexpr size_t q4_0_block_bytes = 2 + 16;
constexpr int64_t int4_group = 64;  // dtype::int4 groups
constexpr int64_t nf4_block = 64;   // bitsandbytes blocksize

// bitsandbytes' NF4 code table (quantiles of N(0,1) scaled to [-1, 1]).
constexpr float nf4_values[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                  -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                  0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                                  0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                                  0.7229568362236023f, 1.0f};

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::f32: return "F32";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
    case dtype::q8_0: return "Q8_0";
    case dtype::q4_0: return "Q4_0";
    case dtype::int8: return "INT8";
    case dtype::int4: return "INT4";
    case dtype::nf4: return "NF4";
    case dtype::u8: return "U8";
    case dtype::i8: return "I8";
  }
  return "?";
}

size_t dtype_row_bytes(dtype t, int64_t n) {
  switch (t) {
    case dtype::f32: return static_cast<size_t>(n) * 4;
    case dtype::f16:
    case dtype::bf16: return static_cast<size_t>(n) * 2;
    case dtype::q8_0: return static_cast<size_t>(n / block_elems) * q8_0_block_bytes;
    case dtype::q4_0: return static_cast<size_t>(n / block_elems) * q4_0_block_bytes;
    case dtype::int8: return static_cast<size_t>(n);
    case dtype::int4: return static_cast<size_t>((n + int4_group - 1) / int4_group) * (int4_group / 2);
    case dtype::nf4: return static_cast<size_t>(n) / 2;
    case dtype::u8:
    case dtype::i8: return static_cast<size_t>(n);
  }
  return 0;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  // Round to nearest even; used only by tests and tools-like paths, so clarity over speed.
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xffu) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xffu) == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  if (exp >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(half);
}

float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

int64_t tensor::numel() const {
  if (shape.empty()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t tensor::bytes() const { return static_cast<size_t>(rows()) * dtype_row_bytes(type, cols()); }

const uint8_t* tensor::row_ptr(int64_t r) const {
  return static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * dtype_row_bytes(type, cols());
}

void tensor::row_to_f32(int64_t r, float* out) const {
  const uint8_t* p = row_ptr(r);
  const int64_t n = cols();
  switch (type) {
    case dtype::f32:
      std::memcpy(out, p, static_cast<size_t>(n) * 4);
      return;
    case dtype::f16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_u16(p + 2 * i));
      return;
    case dtype::bf16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_u16(p + 2 * i));
      return;
    case dtype::q8_0:
      for (int64_t b = 0; b < n / block_elems; ++b) {
        const uint8_t* blk = p + b * q8_0_block_bytes;
        const float d = f16_to_f32(load_u16(blk));
        const auto* q = reinterpret_cast<const int8_t*>(blk + 2);
        for (int64_t i = 0; i < block_elems; ++i) out[b * block_elems + i] = d * static_cast<float>(q[i]);
      }
      return;
    case dtype::q4_0:
      // ggml layout: byte j holds element j in its low nibble and element j+16 in its high one.
      for (int64_t b = 0; b < n / block_elems; ++b) {
        const uint8_t* blk = p + b * q4_0_block_bytes;
        const float d = f16_to_f32(load_u16(blk));
        for (int64_t j = 0; j < 16; ++j) {
          const uint8_t q = blk[2 + j];
          out[b * block_elems + j] = d * static_cast<float>(static_cast<int>(q & 0x0f) - 8);
          out[b * block_elems + j + 16] = d * static_cast<float>(static_cast<int>(q >> 4) - 8);
        }
      }
      return;
    case dtype::int8: {
      const auto* q = reinterpret_cast<const int8_t*>(p);
      for (int64_t i = 0; i < n; ++i) out[i] = scales[r] * static_cast<float>(q[i]);
      return;
    }
    case dtype::int4: {
      // Groups of 64 = two Q4_0-ordered sub-blocks of 32 (value = scale * (nibble - 8)).
      const int64_t groups = (n + int4_group - 1) / int4_group;
      const float* s = scales + r * groups;
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t byte = p[(i / 32) * 16 + (i % 16)];
        const int nib = (i % 32) < 16 ? (byte & 0x0f) : (byte >> 4);
        out[i] = s[i / int4_group] * static_cast<float>(nib - 8);
      }
      return;
    }
    case dtype::nf4:
      for (int64_t i = 0; i < n; ++i) {
        const int64_t flat = r * n + i;
        const uint8_t byte = p[i / 2];
        const int code = (i % 2 == 0) ? (byte >> 4) : (byte & 0x0f);
        out[i] = nf4_values[code] * scales[flat / nf4_block];
      }
      return;
    case dtype::u8:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
      return;
    case dtype::i8:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int8_t>(p[i]));
      return;
  }
  throw model_error("tensor " + name + ": unsupported dtype");
}

}  // namespace moat::engine
