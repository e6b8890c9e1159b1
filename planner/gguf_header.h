// Reads a model's shape from a GGUF file's header (metadata and tensor names), without touching
// the tensor data, so a 40 GB file is sized as fast as a 2 MB one.
//
//   model_spec m = moat::planner::read_gguf_shape("llama-2-tiny-random.gguf");
//
// Every length and count in the file is checked against the bytes actually there: a truncated or
// hostile file is a plan_error, never a crash or a huge allocation.
#pragma once

#include <string>

#include "model_spec.h"

namespace moat::planner {

model_spec read_gguf_shape(const std::string& path);

}  // namespace moat::planner
