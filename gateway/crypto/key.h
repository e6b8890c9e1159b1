// Checkpoint keys: 32 random bytes stored as 64 hex characters in a file (mode 0600) or an
// environment variable. The key lives in a `checkpoint_key` that wipes itself on destruction.
//
//   auto key = moat::crypto::load_key({.key_file = "model.key"});   // or {.key_env = "MOAT_KEY"}
//   auto plain = moat::crypto::decrypt_file_to_memory("model.safetensors.enc", key);
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace moat::crypto {

inline constexpr std::size_t key_bytes = 32;  // AES-256

class checkpoint_key {
 public:
  checkpoint_key() = default;
  explicit checkpoint_key(const std::array<std::uint8_t, key_bytes>& bytes) : bytes_(bytes) {}
  checkpoint_key(const checkpoint_key&) = default;
  checkpoint_key& operator=(const checkpoint_key&) = default;
  ~checkpoint_key();

  const std::uint8_t* data() const { return bytes_.data(); }

 private:
  std::array<std::uint8_t, key_bytes> bytes_{};
};

// Where a key comes from: exactly one of the two is set (the model options `key_file:`/`key_env:`).
struct key_source {
  std::string key_file;
  std::string key_env;
};

// A fresh key from the OpenSSL CSPRNG. Throws std::runtime_error when the RNG fails.
checkpoint_key generate_key();

// Reads a key from a file or an environment variable (64 hex digits, surrounding whitespace
// ignored). Throws std::runtime_error naming the file or variable, never echoing its content.
checkpoint_key load_key(const key_source& source);
checkpoint_key parse_key_hex(const std::string& text, const std::string& origin);

// Writes the key as hex plus newline to a new file created with mode 0600; refuses to overwrite.
void write_key_file(const std::string& path, const checkpoint_key& key);

}  // namespace moat::crypto
