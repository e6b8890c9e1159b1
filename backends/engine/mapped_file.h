// mapped_file: a read-only mmap of a whole file, the storage behind safetensors and GGUF
// tensors. Internal to the loaders.
//
//   auto m = mapped_file::open("model.safetensors");   // throws model_error naming the file
//   std::span<const uint8_t> bytes = m->bytes();
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

namespace moat::engine {

class mapped_file {
 public:
  static std::shared_ptr<mapped_file> open(const std::filesystem::path& path);
  ~mapped_file();
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  mapped_file() = default;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moat::engine
