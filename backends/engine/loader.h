// load_model: one entry point for every checkpoint format the engine reads.
//
//   moat::engine::loaded_model m = moat::engine::load_model("../shared/fixtures/tinystories-656K-hf");
//   m.config.hidden_size;        // 128
//   m.weights.layers[0].wq;      // tensor {q_dim, hidden}, dtype as stored (F32/F16/BF16, Q8_0, NF4...)
//   m.tokenizer.tokenizer_json;  // for the tokenizer ("text" engineer)
//   auto q = moat::engine::load_model(dir, {.quant = moat::engine::dtype::int8, .threads = 4});
//   q.weights.layers[0].wq.type; // dtype::int8: quantized on load, the f16 source pages released
//
// Accepted inputs:
//  - a Hugging Face folder: config.json + model.safetensors, or sharded safetensors with
//    model.safetensors.index.json (weights are mmapped, not copied); a path to its config.json
//    or a .safetensors file inside it means the folder. F32/F16/BF16 weights, and bitsandbytes
//    checkpoints as transformers saves them: 4-bit NF4 (double-quantized or not; dtype::nf4,
//    packed codes mapped, absmax rebuilt in f32) and 8-bit LLM.int8 (dtype::int8, int8 rows
//    mapped, scales = SCB / 127);
//  - a .gguf file (F32/F16/BF16/Q8_0/Q4_0, all mapped as stored: dtype::q8_0 / q4_0 tensors
//    are read block by block by the kernels);
//  - a llama2.c .bin checkpoint (f32, legacy "version 0" layout), with tokenizer.bin or
//    tok512.bin beside it recorded in tokenizer.llama2c_bin.
// Errors are model_error, naming the file and the tensor/key: missing tensors, wrong shapes,
// truncated files, unsupported architectures or dtypes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/model_config.h"
#include "engine/model_error.h"
#include "engine/quant/quantize_rows.h"
#include "engine/tensor.h"

namespace moat::engine {

// One transformer block. Shapes (PyTorch order):
//   attn_norm, ffn_norm: {hidden}
//   wq: {q_dim, hidden}   wk, wv: {kv_dim, hidden}   wo: {hidden, q_dim}
//   w_gate, w_up: {intermediate, hidden}              w_down: {hidden, intermediate}
// wq/wk rows are laid out for config.rope (see rope_style); the loader never re-permutes.
struct layer_weights {
  tensor attn_norm, wq, wk, wv, wo;
  tensor ffn_norm, w_gate, w_up, w_down;
};

struct model_weights {
  tensor embed;       // {vocab, hidden}
  tensor final_norm;  // {hidden}
  tensor lm_head;     // {vocab, hidden}; the same memory as embed when tied
  std::vector<layer_weights> layers;
};

// Where the tokenizer lives, for the tokenizer factory. Empty paths mean "not present".
struct tokenizer_source {
  std::filesystem::path tokenizer_json;         // HF tokenizers
  std::filesystem::path tokenizer_model;        // SentencePiece
  std::filesystem::path tokenizer_config_json;  // chat_template, added tokens, bos/eos flags
  std::filesystem::path generation_config_json;
  std::filesystem::path llama2c_bin;            // llama2.c tokenizer export (tok512.bin)
  std::shared_ptr<const gguf_file> gguf;        // tokenizer.ggml.* metadata when loaded from GGUF
};

// Owns everything the tensors point into (mmaps, dequantized buffers). Immutable after load;
// share one loaded_model between runners by shared_ptr.
struct weight_storage;

struct loaded_model {
  std::filesystem::path source;
  std::string format;  // "safetensors", "gguf" or "llama2c"
  model_config config;
  model_weights weights;
  tokenizer_source tokenizer;
  std::shared_ptr<weight_storage> storage;
};

struct load_options {
  // For a llama2.c .bin: the tokenizer file; default: tokenizer.bin / tok512.bin beside it.
  std::filesystem::path llama2c_tokenizer;
  // The model options' key_file:/key_env: set when the weights files (model.safetensors and its
  // shards, the .gguf, the llama2.c .bin) are encrypted checkpoints; they are then decrypted into
  // memory and a plaintext weights file is refused. config.json and tokenizer files stay plaintext.
  std::optional<crypto::key_source> key;
  // The model options' quant: dtype::int8, int4 or nf4 quantizes the 2-D linear weights (q, k,
  // v, o, gate, up, down, and lm_head unless tied to the embedding) on load, on `threads`
  // threads (0: one per hardware thread), into memory owned by storage; weights already in that
  // format (a bitsandbytes checkpoint) are kept, embeddings and norms stay as stored.
  // dtype::f32 (the default) serves every weight as stored. The source pages of a quantized
  // weight are given back as soon as it is done (a mapped file's pages are re-read from the file
  // if touched again); a decrypted buffer is freed once nothing points into it, and the parts
  // of it that only quantized weights used are given back.
  dtype quant = dtype::f32;
  unsigned threads = 0;
  // Called after each quantized weight with (done, total), on the loading thread; may be empty.
  // For a terminal only: the caller decides whether to show it.
  std::function<void(size_t done, size_t total)> progress;
};

loaded_model load_model(const std::filesystem::path& folder_or_file, const load_options& opts = {});

// The quantize_rows layout of a quantize-on-load dtype (int8, int4 = groups of 64, nf4); throws
// model_error for any other dtype.
quant::row_format row_format_of(dtype t);

}  // namespace moat::engine
