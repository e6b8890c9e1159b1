// mapped_file: the read-only bytes of a whole file, the storage behind safetensors, GGUF and
// llama2.c tensors. A plaintext file is mmapped; an encrypted checkpoint (gateway/crypto) is
// decrypted into an owned, wiped-on-free buffer in memory, never to disk. Internal to the loaders.
//
//   auto m = mapped_file::open("model.safetensors");             // throws model_error naming the file
//   moat::crypto::key_source src{.key_file = "model.key"};
//   auto e = mapped_file::open("model.safetensors", &src);       // must be encrypted, else refused
//   std::span<const uint8_t> bytes = e->bytes();
//   m->release(t.data, t.bytes());   // after quantizing tensor t on load: its pages go back
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>

#include "crypto/checkpoint_file.h"
#include "crypto/key.h"

namespace moat::engine {

class mapped_file {
 public:
  // key == nullptr: the file must be plaintext (an encrypted one is refused, naming the options
  // to set). key != nullptr: the file must be an encrypted checkpoint (a plaintext file there may
  // be a substitution, so it is refused); it is decrypted and every chunk verified here, so a
  // wrong key, a flipped byte or a cut file fails now with the file and chunk named.
  static std::shared_ptr<mapped_file> open(const std::filesystem::path& path,
                                           const crypto::key_source* key = nullptr);
  ~mapped_file();
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }
  bool decrypted() const { return plain_.has_value(); }

  // Gives the pages wholly inside [p, p + n) (a range of bytes()) back to the kernel
  // (MADV_DONTNEED) and returns how many bytes that was. For an mmapped file this is always
  // safe: a page touched again is read back from the file. For a decrypted buffer the bytes are
  // gone (anonymous pages come back zeroed), so the caller must know that nothing reads them
  // any more. Thread-safe.
  size_t release(const void* p, size_t n);
  // Bytes released so far (the ranges may overlap: this is the sum of release()'s results).
  size_t released_bytes() const { return released_.load(std::memory_order_relaxed); }
  // Whether [p, p + n) lies inside bytes().
  bool contains(const void* p, size_t n) const;

 private:
  mapped_file() = default;
  static std::shared_ptr<mapped_file> open_plain(const std::filesystem::path& path);
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;  // into the mmap, or into plain_ when set
  size_t size_ = 0;
  std::optional<crypto::plaintext_buffer> plain_;  // owns the decrypted bytes; no munmap of data_ then
  std::atomic<size_t> released_{0};
};

}  // namespace moat::engine
