// Number formats the planner sizes: how many bits one weight or one KV-cache element costs,
// scales and block metadata included.
//
//   auto f = moat::planner::parse_weight_format("nf4-dq");          // throws plan_error
//   double bits = moat::planner::weight_bits(f, /*group=*/64, /*in_features=*/4096);
//   // 4 + 8/64 + 32/(64*256) = 4.1270 bits
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace moat::planner {

// Every error a user can cause (a bad flag, an unknown GPU, a broken config file): the command
// prints what() and exits with status 2.
struct plan_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// fp32 is what the cpu backend runs an fp32 checkpoint as (weights mapped as stored, KV in
// f32): it lets the planner size the fixture model the way the cpu backend holds it.
enum class weight_format { fp32, fp16, bf16, int8, int4, nf4, nf4_dq };
enum class kv_format { fp32, fp16, int8 };

weight_format parse_weight_format(std::string_view name);
kv_format parse_kv_format(std::string_view name);
std::string_view name_of(weight_format f);
std::string_view name_of(kv_format f);

// The int4 group size assumed when --group is not given: 32, the block of GGUF Q4_0 (4 bits +
// one fp16 scale per 32 weights = 4.5 bits), the smallest group and so the largest estimate.
inline constexpr int default_int4_group = 32;

// Bits per weight of a matrix whose rows are `in_features` long, metadata included:
//   fp32       32
//   fp16/bf16  16
//   int8       8 + 16/in_features     (one fp16 scale per output channel = per row)
//   int4       4 + 16/group           (one fp16 scale per group, symmetric, no zero point)
//   nf4        4 + 32/64              (one fp32 absmax per block of 64)
//   nf4-dq     4 + 8/64 + 32/(64*256) (absmax as 8 bits per 64, one fp32 scale per 256 absmax)
// Throws plan_error for an int4 group other than 32, 64 or 128.
double weight_bits(weight_format f, int group, std::int64_t in_features);

// Bytes of one element of what stays unquantized (token embedding, norms, router): 4 for
// fp32 weights, otherwise 2 (fp16/bf16).
double unquantized_bytes(weight_format f);

// Bytes per cached K or V element for a head of `head_dim` values:
//   fp32  4
//   fp16  2
//   int8  1 + 2/head_dim   (one fp16 scale per token and head; the cpu backend stores f32)
double kv_element_bytes(kv_format f, std::int64_t head_dim);

}  // namespace moat::planner
