// Encrypted checkpoint files: streaming encryption/decryption in constant memory, and the
// in-memory reader the model loaders use. The plaintext never reaches disk or a log here except
// through decrypt_file, which the `moat decrypt` command calls on the user's explicit request.
//
//   auto key = moat::crypto::load_key({.key_file = opts.key_file, .key_env = opts.key_env});
//   if (moat::crypto::is_encrypted_checkpoint(path)) {
//     moat::crypto::plaintext_buffer buf = moat::crypto::decrypt_file_to_memory(path, key);
//     parse_safetensors(buf.data(), buf.size());   // instead of mmap(path)
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "crypto/chunk_cipher.h"
#include "crypto/key.h"

namespace moat::crypto {

// Called after each chunk with (bytes done, bytes total); total is 0 when unknown.
using progress_fn = std::function<void(std::uint64_t, std::uint64_t)>;

struct stream_options {
  std::uint32_t chunk_bytes = default_chunk_bytes;
  progress_fn progress;  // may be empty
};

// Page-aligned anonymous memory (mmap), excluded from core dumps and wiped before it is
// unmapped. Move-only; owns its mapping.
class plaintext_buffer {
 public:
  plaintext_buffer() = default;
  explicit plaintext_buffer(std::size_t size);
  plaintext_buffer(plaintext_buffer&& other) noexcept;
  plaintext_buffer& operator=(plaintext_buffer&& other) noexcept;
  plaintext_buffer(const plaintext_buffer&) = delete;
  plaintext_buffer& operator=(const plaintext_buffer&) = delete;
  ~plaintext_buffer();

  std::uint8_t* data() { return data_; }
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  void release() noexcept;
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Reads a checkpoint chunk by chunk. The file must be a regular file: its size tells which
// chunk is final, so a cut or an appended chunk is detected at that chunk.
class checkpoint_reader {
 public:
  checkpoint_reader(const std::string& path, const checkpoint_key& key);
  ~checkpoint_reader();
  checkpoint_reader(const checkpoint_reader&) = delete;
  checkpoint_reader& operator=(const checkpoint_reader&) = delete;

  std::uint64_t plaintext_size() const { return plaintext_size_; }
  std::uint64_t chunk_count() const { return chunk_count_; }
  std::uint32_t chunk_bytes() const { return header_.chunk_bytes; }
  // Decrypts the next chunk into out (room for chunk_bytes()); returns its size, or 0 at the end
  // (an empty plaintext also gives 0 once its single chunk is verified).
  std::size_t next_chunk(std::uint8_t* out);
  bool done() const { return next_index_ >= chunk_count_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  checkpoint_header header_;
  std::uint64_t chunk_count_ = 0;
  std::uint64_t plaintext_size_ = 0;
  std::uint64_t next_index_ = 0;
  std::vector<std::uint8_t> record_;  // one chunk's ciphertext + tag
  std::unique_ptr<chunk_cipher> cipher_;
};

// Whether path starts with the checkpoint magic (false for unreadable or short files).
bool is_encrypted_checkpoint(const std::string& path);

// Whole-file decryption into memory, verifying every chunk. Throws checkpoint_error.
plaintext_buffer decrypt_file_to_memory(const std::string& path, const checkpoint_key& key);

// in_path -> out_path. The output is written to out_path + ".part" (mode 0600) and renamed when
// complete; on any failure the partial file is removed. Throws checkpoint_error / runtime_error.
void encrypt_file(const std::string& in_path, const std::string& out_path,
                  const checkpoint_key& key, const stream_options& options = {});
void decrypt_file(const std::string& in_path, const std::string& out_path,
                  const checkpoint_key& key, const stream_options& options = {});

}  // namespace moat::crypto
