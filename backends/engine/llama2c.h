// load_llama2c: reads a llama2.c checkpoint (legacy "version 0" layout: 7 int32 header, then f32
// arrays) by mmap. Internal to load_model; see ../shared/fixtures/README.md for the layout.
//
//   loaded_model m = load_llama2c("stories260K.bin", "");   // tokenizer: tok512.bin beside it
#pragma once

#include <filesystem>

#include "engine/loader.h"

namespace moat::engine {

// key: the model's key_file/key_env when the .bin is an encrypted checkpoint (tokenizer stays plaintext).
loaded_model load_llama2c(const std::filesystem::path& file, const std::filesystem::path& tokenizer,
                          const crypto::key_source* key = nullptr);

}  // namespace moat::engine
