// Memory arithmetic: weight bytes by part, KV bytes per token, activations, and what one device
// holds for a given split of the model (tensor parallel within a server, pipeline stages across).
//
//   memory_model mm(model, weight_format::int4, /*group=*/32, kv_format::fp16,
//                   kv_paging{.block_size = 16, .prompt = 7680, .n = 16});  // 16 answers, one
//                   prompt
//   layout l{.tp = 8, .pp = 1};
//   per_device d = mm.on_device(l, dev, /*context=*/8192, /*concurrency=*/16);
//   d.fits();                  // d.total() <= device memory
//   // On a CPU device, d.allocator is what mimalloc keeps beyond glibc (allocator.h); else 0.
//   mm.kv_blocks(8192, 16);    // 480 shared prompt blocks + 16 x 32 = 992
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "allocator.h"
#include "formats.h"
#include "hardware.h"
#include "model_spec.h"

namespace moat::planner {

// How the model is split: `tp` devices share every layer (heads and FFN columns split), `pp`
// stages each hold a contiguous run of layers. The deployment uses tp * pp devices.
struct layout {
  int tp = 1;
  int pp = 1;
  int devices() const { return tp * pp; }
};

// How the paged KV cache holds a workload (docs/planning.md, "KV cache"): positions live in
// blocks of `block_size`; the `n` choices of one request share the full blocks of its `prompt`
// tokens and each holds its own copy of the partly filled last one plus what it generates.
// prompt 0 (unknown) or n 1 shares nothing: every sequence holds ceil(context / block_size) blocks.
struct kv_paging {
  std::int64_t block_size = 16;  // the backends' kv_block_size default
  std::int64_t prompt = 0;       // tokens of each request's prompt, part of `context`
  std::int64_t n = 1;            // choices (sequences) per request
};

// What one device holds, in bytes, for the fullest stage of a layout.
struct per_device {
  double weights = 0;
  double kv = 0;            // the KV cache this device would hold, all of it on the device
  double activations = 0;
  double overhead = 0;
  double allocator = 0;  // the host allocator's own keep (allocator.h); CPU devices only
  double capacity = 0;
  double total() const { return weights + kv + activations + overhead + allocator; }
  double headroom() const { return capacity - total(); }
  bool fits() const { return headroom() >= 0; }
  // Room left for KV once weights, activations, overhead and allocator are in (may be negative).
  double kv_room() const { return capacity - weights - activations - overhead - allocator; }
};

class memory_model {
 public:
  // `host` is the malloc of the serving process: it counts on CPU devices, whose memory is the
  // host's (a GPU's total is device memory, where the host allocator keeps nothing).
  memory_model(model_spec model, weight_format weights, int group, kv_format kv,
               kv_paging paging = {}, allocator host = allocator::glibc);

  const model_spec& model() const { return model_; }

  // Stored bytes of each part at the chosen format. Norm vectors stay 16-bit (32-bit with fp32
  // weights); the token embedding stays 16-bit (likewise) (a table lookup, which bitsandbytes, GPTQ and AWQ checkpoints leave
  // unquantized); the LM head is quantized with the blocks.
  double layer_bytes() const;       // one transformer block (all experts)
  double embedding_bytes() const;   // [V, H] at 16 (fp32: 32) bits; with tied embeddings, also the LM head
  double lm_head_bytes() const;     // 0 when tied
  double weights_bytes() const;     // everything stored

  // Bytes streamed from memory per decode step for weights, with `batch` sequences: every
  // block (only the experts the batch touches) and the LM head; of the embedding only B rows.
  double weights_read_per_step(std::int64_t batch) const;

  // K and V for one token across all layers: 2 * L * kv_heads * head_dim * element bytes.
  double kv_bytes_per_token() const;

  // KV blocks the whole deployment holds when `concurrency` sequences each reach `context`
  // positions (see kv_paging); times block_size, the positions the KV bytes are counted for.
  double kv_blocks(std::int64_t context, std::int64_t concurrency) const;  // a whole number
  double kv_positions(std::int64_t context, std::int64_t concurrency) const;

  // Working buffers on one device while a step runs (see docs/planning.md for the formula).
  double activation_bytes(const layout& l, std::int64_t context, std::int64_t concurrency) const;

  per_device on_device(const layout& l, const device& d, std::int64_t context,
                       std::int64_t concurrency) const;

  // The tensor-parallel degrees this model allows: divisors of both head counts, up to `limit`.
  std::vector<int> valid_tp(int limit) const;

 private:
  double matrix_bytes(std::int64_t rows, std::int64_t cols) const;  // [rows, cols] at weights_
  double experts_touched(std::int64_t batch) const;

  model_spec model_;
  weight_format weights_;
  int group_;
  kv_format kv_;
  kv_paging paging_;
  allocator host_;
};

// Checks that `tp` divides the attention and KV heads; throws plan_error saying what does.
void check_tensor_parallel(const model_spec& m, int tp, const std::string& flag);

}  // namespace moat::planner
