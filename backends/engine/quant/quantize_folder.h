// Ahead-of-time quantization of a Hugging Face model folder (`moat quantize`): reads its
// safetensors (one file or an index of shards), writes OUT/model.safetensors with every linear
// weight in the bitsandbytes NF4 layout transformers saves (double-quantized, blocks of 64;
// see bnb_checkpoint.h for the tensor names), every other tensor as it was, config.json with
// a bitsandbytes `quantization_config` added, and the folder's other files copied.
//
//   quantize_folder_options opt;
//   opt.progress = [](size_t done, size_t total) { ... };   // optional
//   quantize_report r = quantize_model_folder("in/", "out/", opt);
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>

namespace moat::engine::quant {

struct quantize_folder_options {
  std::string format = "nf4";  // only nf4 is written for now
  unsigned threads = 0;        // quantizing threads; 0: one per hardware thread (same bytes for any count)
  std::function<void(size_t done, size_t total)> progress;
};

struct quantize_report {
  size_t tensors = 0;
  size_t quantized = 0;
  size_t bytes_in = 0;
  size_t bytes_out = 0;
};

// Which weights are quantized: 2-D `*.weight` tensors of linear layers, i.e. not the
// embedding, not lm_head (transformers keeps it in full precision) and not norms.
bool is_quantized_linear(const std::string& name, size_t dims);

// Throws std::runtime_error (or the loader's model_error) naming the file or tensor at fault.
quantize_report quantize_model_folder(const std::filesystem::path& in, const std::filesystem::path& out,
                                      const quantize_folder_options& opt);

}  // namespace moat::engine::quant
