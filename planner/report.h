// The two renderings of a plan: a table for people and a JSON object for programs. The JSON
// keys are a contract (issue 7): weights_bytes, kv_bytes_per_token, total_bytes, fits,
// gpus_needed, tensor_parallel, kv_offload_bytes, decode_tokens_per_s, cost_per_month,
// cost_per_million_tokens, break_even_tokens_per_month, and more beside them.
//
//   std::cout << moat::planner::render_table(plan);
//   std::cout << moat::planner::render_json(plan);
#pragma once

#include <string>

#include "plan.h"

namespace moat::planner {

std::string render_table(const plan_result& r);
std::string render_json(const plan_result& r);

}  // namespace moat::planner
