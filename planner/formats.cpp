#include "formats.h"

#include <fmt/format.h>

namespace moat::planner {

weight_format parse_weight_format(std::string_view name) {
  if (name == "fp32") return weight_format::fp32;
  if (name == "fp16") return weight_format::fp16;
  if (name == "bf16") return weight_format::bf16;
  if (name == "int8") return weight_format::int8;
  if (name == "int4") return weight_format::int4;
  if (name == "nf4") return weight_format::nf4;
  if (name == "nf4-dq") return weight_format::nf4_dq;
  throw plan_error(fmt::format("--weights '{}': expected fp32, fp16, bf16, int8, int4, nf4 or nf4-dq", name));
}

kv_format parse_kv_format(std::string_view name) {
  if (name == "fp32") return kv_format::fp32;
  if (name == "fp16") return kv_format::fp16;
  if (name == "int8") return kv_format::int8;
  throw plan_error(fmt::format("--kv '{}': expected fp32, fp16 or int8", name));
}

std::string_view name_of(weight_format f) {
  switch (f) {
    case weight_format::fp32: return "fp32";
    case weight_format::fp16: return "fp16";
    case weight_format::bf16: return "bf16";
    case weight_format::int8: return "int8";
    case weight_format::int4: return "int4";
    case weight_format::nf4: return "nf4";
    case weight_format::nf4_dq: return "nf4-dq";
  }
  return "?";
}

std::string_view name_of(kv_format f) {
  switch (f) {
    case kv_format::fp32: return "fp32";
    case kv_format::fp16: return "fp16";
    case kv_format::int8: return "int8";
  }
  return "?";
}

double weight_bits(weight_format f, int group, std::int64_t in_features) {
  switch (f) {
    case weight_format::fp32:
      return 32.0;
    case weight_format::fp16:
    case weight_format::bf16:
      return 16.0;
    case weight_format::int8:
      return 8.0 + 16.0 / static_cast<double>(in_features);
    case weight_format::int4:
      if (group != 32 && group != 64 && group != 128)
        throw plan_error(fmt::format("--group {}: int4 groups are 32, 64 or 128", group));
      return 4.0 + 16.0 / group;
    case weight_format::nf4:
      return 4.0 + 32.0 / 64.0;
    case weight_format::nf4_dq:
      return 4.0 + 8.0 / 64.0 + 32.0 / (64.0 * 256.0);
  }
  return 16.0;
}

double unquantized_bytes(weight_format f) { return f == weight_format::fp32 ? 4.0 : 2.0; }

double kv_element_bytes(kv_format f, std::int64_t head_dim) {
  if (f == kv_format::fp32) return 4.0;
  if (f == kv_format::fp16) return 2.0;
  // int8: one fp16 scale per token and head. The cpu backend's paged KV keeps an f32 scale
  // (backends/cpu/paged_kv.h): 2/head_dim bytes more per element than counted here.
  return 1.0 + 2.0 / static_cast<double>(head_dim);
}

}  // namespace moat::planner
