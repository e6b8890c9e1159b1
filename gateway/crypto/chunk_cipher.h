// The encrypted checkpoint format (version 1) and its per-chunk AES-256-GCM.
//
//   file   := header chunk+            (at least one chunk; the last one carries the final flag)
//   header := "MOATCKPT" | version u32le = 1 | chunk_bytes u32le | nonce_base[12] | reserved u32 = 0
//   chunk  := ciphertext[chunk_bytes] | tag[16]     (the last: ciphertext[0..chunk_bytes] | tag[16])
//
// Chunk i is sealed with nonce = nonce_base XOR be64(i) (in the low 8 bytes) and
// AAD = header[32] | le64(i) | final u8. Binding the whole header, the index and the final flag
// means a modified header, reordered chunks, a cut at a chunk boundary and an appended chunk all
// fail authentication at a known chunk. A fresh random nonce_base per file keeps nonces unique
// under one key across files (2^-96 collision odds per pair of files).
//
//   chunk_cipher c(key, header_bytes_view, "model.enc");
//   c.seal(i, is_final, plain, n, out_cipher, out_tag);
//   c.open(i, is_final, cipher, n, tag, out_plain);   // throws checkpoint_error naming file+chunk
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "crypto/key.h"

namespace moat::crypto {

inline constexpr std::size_t header_bytes = 32;
inline constexpr std::size_t tag_bytes = 16;
inline constexpr std::size_t nonce_bytes = 12;
inline constexpr std::uint32_t format_version = 1;
inline constexpr std::uint32_t default_chunk_bytes = 1u << 20;  // 1 MiB
inline constexpr std::uint32_t min_chunk_bytes = 16;
inline constexpr std::uint32_t max_chunk_bytes = 64u << 20;
inline constexpr char magic[8] = {'M', 'O', 'A', 'T', 'C', 'K', 'P', 'T'};

// Every failure to read an encrypted checkpoint: the message names the file and, where one is
// at fault, the chunk. It never holds key or plaintext bytes.
class checkpoint_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct checkpoint_header {
  std::uint32_t chunk_bytes = default_chunk_bytes;
  std::array<std::uint8_t, nonce_bytes> nonce_base{};

  std::array<std::uint8_t, header_bytes> serialize() const;
  // Throws checkpoint_error("<name>: ...") for a wrong magic, version, chunk size or reserved field.
  static checkpoint_header parse(const std::uint8_t* bytes, std::size_t size, const std::string& name);
  // A new header with a random nonce base.
  static checkpoint_header fresh(std::uint32_t chunk_bytes);
};

// Whether the first bytes are the checkpoint magic (a loader's test for "is this encrypted?").
bool has_checkpoint_magic(const std::uint8_t* bytes, std::size_t size);

class chunk_cipher {
 public:
  chunk_cipher(const checkpoint_key& key, const checkpoint_header& header, std::string name);
  ~chunk_cipher();
  chunk_cipher(const chunk_cipher&) = delete;
  chunk_cipher& operator=(const chunk_cipher&) = delete;

  // out may equal plain (in-place). n <= chunk_bytes.
  void seal(std::uint64_t index, bool final, const std::uint8_t* plain, std::size_t n,
            std::uint8_t* out, std::uint8_t* tag);
  // Throws checkpoint_error naming the file and chunk. When authentication fails, it tells a cut
  // or an appended file apart from a flipped byte by trying the opposite final flag; out holds
  // no plaintext after a throw.
  void open(std::uint64_t index, bool final, const std::uint8_t* cipher, std::size_t n,
            const std::uint8_t* tag, std::uint8_t* out);

  const std::string& name() const { return name_; }

 private:
  bool try_open(std::uint64_t index, bool final, const std::uint8_t* cipher, std::size_t n,
                const std::uint8_t* tag, std::uint8_t* out);
  void prepare(std::uint64_t index, bool final, bool encrypt);

  struct evp;  // EVP_CIPHER_CTX, kept out of the header
  evp* ctx_ = nullptr;
  checkpoint_key key_;
  std::array<std::uint8_t, header_bytes> header_bytes_{};
  std::array<std::uint8_t, nonce_bytes> nonce_base_{};
  std::string name_;
};

}  // namespace moat::crypto
