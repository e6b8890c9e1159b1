// libFuzzer: the safetensors header parser (backends/engine) on arbitrary bytes, in memory: it
// must add tensors that lie inside the input or throw model_error (truncation, bad JSON, bad
// dtype/shape/offsets), never crash or over-read.
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "engine/model_error.h"
#include "engine/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::map<std::string, moat::engine::tensor, std::less<>> out;
  try {
    moat::engine::parse_safetensors(std::span<const std::uint8_t>(data, size), "fuzz", out);
  } catch (const moat::engine::model_error&) {
    return 0;
  }
  // Every tensor it accepted must lie inside the input: touch its first and last byte.
  volatile std::uint8_t sink = 0;
  for (const auto& [name, t] : out) {
    std::size_t bytes = moat::engine::dtype_row_bytes(t.type, 1);
    for (std::int64_t d : t.shape) bytes *= static_cast<std::size_t>(d);
    if (bytes == 0) continue;
    const auto* p = static_cast<const std::uint8_t*>(t.data);
    sink = sink + p[0] + p[bytes - 1];
  }
  (void)sink;
  return 0;
}
