#include "cuda_weights.h"

#include <fmt/format.h>

#include <cstring>

#include "engine/quant/fp16.h"
#include "engine/quant/int4.h"
#include "engine/quant/int8.h"
#include "engine/quant/nf4.h"

namespace moat::cuda {

void check(cudaError_t e, std::string_view what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a sticky launch error so the next check reports its own
    throw engine::model_error(fmt::format("cuda: {}: {}", what, cudaGetErrorString(e)));
  }
}

bool known_weight_format(const std::string& f) {
  return f.empty() || f == "f16" || f == "bf16" || f == "int8" || f == "int4" || f == "nf4";
}

namespace {

std::vector<float> rows_f32(const engine::tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.rows() * t.cols()));
  for (int64_t r = 0; r < t.rows(); ++r) t.row_to_f32(r, out.data() + r * t.cols());
  return out;
}

template <class T>
void put(device_buffer<T>& buf, const T* host, size_t n, cudaStream_t s) {
  buf.upload(host, n, s);
}

}  // namespace

bool direct_format(const engine::tensor& t, const std::string& format, int32_t int4_group,
                   kernels::weight_format* out) {
  using engine::dtype;
  kernels::weight_format f{};
  bool ok = false;
  if (t.type == dtype::int8 && t.scales != nullptr && (format.empty() || format == "int8")) {
    f = kernels::weight_format::int8, ok = true;
  } else if (t.type == dtype::int4 && t.scales != nullptr &&
             (format.empty() || (format == "int4" && int4_group == 64))) {
    f = kernels::weight_format::int4, ok = true;
  } else if (t.type == dtype::nf4 && t.scales != nullptr && (format.empty() || format == "nf4")) {
    f = kernels::weight_format::nf4, ok = true;
  } else if (t.type == dtype::q4_0 && t.cols() % 32 == 0 && (format.empty() || format == "int4")) {
    f = kernels::weight_format::int4, ok = true;
  } else if (t.type == dtype::q8_0 && t.cols() % 32 == 0 && (format.empty() || format == "int8")) {
    f = kernels::weight_format::int8, ok = true;
  }
  if (ok && out != nullptr) *out = f;
  return ok;
}

void repack_q4_0_as_int4(const engine::tensor& t, std::vector<uint8_t>& q, std::vector<float>& s) {
  const int64_t rows = t.rows(), cols = t.cols(), blocks = cols / 32;
  q.resize(static_cast<size_t>(rows * cols / 2));
  s.resize(static_cast<size_t>(rows * blocks));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* p = t.row_ptr(r);
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* blk = p + b * 18;  // f16 scale, then 16 bytes of nibbles (ggml order)
      s[r * blocks + b] = engine::f16_to_f32(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
      std::memcpy(q.data() + r * (cols / 2) + b * 16, blk + 2, 16);
    }
  }
}

void repack_q8_0_as_int8(const engine::tensor& t, std::vector<int8_t>& q, std::vector<float>& s) {
  const int64_t rows = t.rows(), cols = t.cols(), blocks = cols / 32;
  q.resize(static_cast<size_t>(rows * cols));
  s.resize(static_cast<size_t>(rows * blocks));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* p = t.row_ptr(r);
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* blk = p + b * 34;  // f16 scale, then 32 int8 values
      s[r * blocks + b] = engine::f16_to_f32(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
      std::memcpy(q.data() + r * cols + b * 32, blk + 2, 32);
    }
  }
}

device_buffer<float> upload_f32(const engine::tensor& t, cudaStream_t stream) {
  auto host = rows_f32(t);
  device_buffer<float> d;
  d.upload(host.data(), host.size(), stream);
  check(cudaStreamSynchronize(stream), "upload norm");
  return d;
}

device_weight upload_weight(const engine::tensor& t, const std::string& format, int32_t int4_group,
                            cudaStream_t stream) {
  if (!known_weight_format(format)) throw engine::model_error(fmt::format("cuda: unknown weights format '{}'", format));
  device_weight w;
  auto& v = w.view;
  v.rows = t.rows();
  v.cols = t.cols();
  const size_t n = static_cast<size_t>(v.rows * v.cols);
  kernels::weight_format direct{};
  if (direct_format(t, format, int4_group, &direct)) {
    v.format = direct;
    if (t.type == engine::dtype::q4_0) {
      std::vector<uint8_t> q;
      std::vector<float> sc;
      repack_q4_0_as_int4(t, q, sc);
      v.group = 32;
      put(w.data, q.data(), q.size(), stream);
      put(w.scales, sc.data(), sc.size(), stream);
      check(cudaStreamSynchronize(stream), "upload weights");
    } else if (t.type == engine::dtype::q8_0) {
      std::vector<int8_t> q;
      std::vector<float> sc;
      repack_q8_0_as_int8(t, q, sc);
      v.int8_group = 32;
      put(w.data, reinterpret_cast<const uint8_t*>(q.data()), q.size(), stream);
      put(w.scales, sc.data(), sc.size(), stream);
      check(cudaStreamSynchronize(stream), "upload weights");
    } else if (t.type == engine::dtype::int8) {  // [rows][cols] int8, scales [rows]
      put(w.data, static_cast<const uint8_t*>(t.data), n, stream);
      put(w.scales, t.scales, static_cast<size_t>(v.rows), stream);
    } else if (t.type == engine::dtype::int4) {  // groups of 64, the kernels' layout
      v.group = 64;
      put(w.data, static_cast<const uint8_t*>(t.data),
          static_cast<size_t>(v.rows * kernels::int4_row_bytes(v.cols, 64)), stream);
      put(w.scales, t.scales, static_cast<size_t>(v.rows * kernels::int4_row_groups(v.cols, 64)), stream);
    } else {  // nf4: flat packed codes, one f32 absmax per 64 elements (no double quantization)
      put(w.data, static_cast<const uint8_t*>(t.data), n / 2, stream);
      put(w.scales, t.scales, (n + 63) / 64, stream);
    }
  } else if (format.empty() && (t.type == engine::dtype::f16 || t.type == engine::dtype::bf16)) {
    v.format = t.type == engine::dtype::f16 ? kernels::weight_format::f16 : kernels::weight_format::bf16;
    put(w.data, static_cast<const uint8_t*>(t.data), n * 2, stream);
  } else if (format.empty()) {  // f32, and GGUF blocks dequantized by the loader's row_to_f32
    v.format = kernels::weight_format::f32;
    auto f = rows_f32(t);
    put(w.data, reinterpret_cast<const uint8_t*>(f.data()), n * 4, stream);
    check(cudaStreamSynchronize(stream), "upload weights");
  } else if (format == "f16" || format == "bf16") {
    auto f = rows_f32(t);
    std::vector<uint16_t> h(n);
    for (size_t i = 0; i < n; ++i) {
      if (format == "f16") {
        h[i] = engine::quant::fp32_to_fp16(f[i]);
      } else {  // round to nearest even
        uint32_t bits;
        std::memcpy(&bits, &f[i], 4);
        h[i] = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
      }
    }
    v.format = format == "f16" ? kernels::weight_format::f16 : kernels::weight_format::bf16;
    put(w.data, reinterpret_cast<const uint8_t*>(h.data()), n * 2, stream);
    check(cudaStreamSynchronize(stream), "upload weights");
  } else if (format == "int8") {
    auto f = rows_f32(t);
    auto m = engine::quant::quantize_int8_channel(f.data(), v.rows, v.cols);
    v.format = kernels::weight_format::int8;
    put(w.data, reinterpret_cast<const uint8_t*>(m.q.data()), m.q.size(), stream);
    put(w.scales, m.scales.data(), m.scales.size(), stream);
    check(cudaStreamSynchronize(stream), "upload weights");
  } else if (format == "int4") {
    if (!engine::quant::int4_group_valid(int4_group))
      throw engine::model_error(fmt::format("cuda: int4 group {} (must be 32, 64 or 128)", int4_group));
    auto f = rows_f32(t);
    const size_t rb = engine::quant::int4_row_bytes(v.cols, int4_group);
    const size_t ng = engine::quant::int4_row_groups(v.cols, int4_group);
    std::vector<uint8_t> q(rb * v.rows);
    std::vector<float> s(ng * v.rows);
    for (int64_t r = 0; r < v.rows; ++r)
      engine::quant::quantize_int4_row(f.data() + r * v.cols, v.cols, int4_group, q.data() + r * rb, s.data() + r * ng);
    v.format = kernels::weight_format::int4;
    v.group = int4_group;
    put(w.data, q.data(), q.size(), stream);
    put(w.scales, s.data(), s.size(), stream);
    check(cudaStreamSynchronize(stream), "upload weights");
  } else {  // nf4 with double quantization, as bitsandbytes stores it
    auto f = rows_f32(t);
    auto q = engine::quant::quantize_nf4(f.data(), n);
    auto dq = engine::quant::double_quantize(q.absmax.data(), q.absmax.size());
    v.format = kernels::weight_format::nf4;
    v.absmax_offset = dq.offset;
    put(w.data, q.packed.data(), q.packed.size(), stream);
    put(w.codes, dq.codes.data(), dq.codes.size(), stream);
    put(w.absmax2, dq.absmax2.data(), dq.absmax2.size(), stream);
    put(w.map, dq.code.data(), dq.code.size(), stream);
    check(cudaStreamSynchronize(stream), "upload weights");
  }
  check(cudaStreamSynchronize(stream), "upload weights");
  v.data = w.data.get();
  v.scales = w.scales.get();
  v.absmax_codes = w.codes.get();
  v.absmax2 = w.absmax2.get();
  v.absmax_map = w.map.get();
  // nf4 as stored: plain absmax (absmax_codes stays null), kept in the scales buffer.
  if (v.format == kernels::weight_format::nf4 && !w.codes.get()) v.absmax = w.scales.get();
  return w;
}

}  // namespace moat::cuda
