#include "crypto/chunk_cipher.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>

namespace moat::crypto {

namespace {

void put_le32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get_le32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
         std::uint32_t(p[3]) << 24;
}

}  // namespace

std::array<std::uint8_t, header_bytes> checkpoint_header::serialize() const {
  std::array<std::uint8_t, header_bytes> out{};
  std::memcpy(out.data(), magic, sizeof magic);
  put_le32(out.data() + 8, format_version);
  put_le32(out.data() + 12, chunk_bytes);
  std::memcpy(out.data() + 16, nonce_base.data(), nonce_bytes);
  put_le32(out.data() + 28, 0);
  return out;
}

checkpoint_header checkpoint_header::parse(const std::uint8_t* bytes, std::size_t size,
                                           const std::string& name) {
  if (size < header_bytes)
    throw checkpoint_error(name + ": too short for an encrypted checkpoint header (" +
                           std::to_string(size) + " bytes)");
  if (!has_checkpoint_magic(bytes, size))
    throw checkpoint_error(name + ": not an encrypted moat checkpoint (bad magic)");
  const std::uint32_t version = get_le32(bytes + 8);
  if (version != format_version)
    throw checkpoint_error(name + ": header: unsupported format version " + std::to_string(version));
  checkpoint_header h;
  h.chunk_bytes = get_le32(bytes + 12);
  if (h.chunk_bytes < min_chunk_bytes || h.chunk_bytes > max_chunk_bytes)
    throw checkpoint_error(name + ": header: chunk size " + std::to_string(h.chunk_bytes) +
                           " out of range (header modified?)");
  std::memcpy(h.nonce_base.data(), bytes + 16, nonce_bytes);
  if (get_le32(bytes + 28) != 0) throw checkpoint_error(name + ": header: reserved field is not zero");
  return h;
}

checkpoint_header checkpoint_header::fresh(std::uint32_t chunk_bytes) {
  if (chunk_bytes < min_chunk_bytes || chunk_bytes > max_chunk_bytes)
    throw checkpoint_error("chunk size " + std::to_string(chunk_bytes) + " out of range [" +
                           std::to_string(min_chunk_bytes) + ", " + std::to_string(max_chunk_bytes) + "]");
  checkpoint_header h;
  h.chunk_bytes = chunk_bytes;
  if (RAND_bytes(h.nonce_base.data(), static_cast<int>(nonce_bytes)) != 1)
    throw checkpoint_error("the random number generator failed");
  return h;
}

bool has_checkpoint_magic(const std::uint8_t* bytes, std::size_t size) {
  return size >= sizeof magic && std::memcmp(bytes, magic, sizeof magic) == 0;
}

struct chunk_cipher::evp {
  EVP_CIPHER_CTX* ctx = nullptr;
};

chunk_cipher::chunk_cipher(const checkpoint_key& key, const checkpoint_header& header,
                           std::string name)
    : ctx_(new evp), key_(key), header_bytes_(header.serialize()),
      nonce_base_(header.nonce_base), name_(std::move(name)) {
  ctx_->ctx = EVP_CIPHER_CTX_new();
  if (!ctx_->ctx) {
    delete ctx_;
    throw checkpoint_error("out of memory for a cipher context");
  }
}

chunk_cipher::~chunk_cipher() {
  EVP_CIPHER_CTX_free(ctx_->ctx);
  delete ctx_;
}

void chunk_cipher::prepare(std::uint64_t index, bool final, bool encrypt) {
  std::array<std::uint8_t, nonce_bytes> nonce = nonce_base_;
  for (int i = 0; i < 8; ++i) nonce[nonce_bytes - 1 - i] ^= static_cast<std::uint8_t>(index >> (8 * i));
  std::array<std::uint8_t, header_bytes + 9> aad{};
  std::memcpy(aad.data(), header_bytes_.data(), header_bytes);
  for (int i = 0; i < 8; ++i) aad[header_bytes + i] = static_cast<std::uint8_t>(index >> (8 * i));
  aad[header_bytes + 8] = final ? 1 : 0;

  EVP_CIPHER_CTX* c = ctx_->ctx;
  // The default GCM IV length is 12 bytes, which is nonce_bytes.
  const int ok = encrypt ? EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), nullptr, key_.data(), nonce.data())
                         : EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), nullptr, key_.data(), nonce.data());
  int len = 0;
  if (ok != 1 || (encrypt ? EVP_EncryptUpdate(c, nullptr, &len, aad.data(), int(aad.size()))
                          : EVP_DecryptUpdate(c, nullptr, &len, aad.data(), int(aad.size()))) != 1)
    throw checkpoint_error(name_ + ": chunk " + std::to_string(index) + ": cipher setup failed");
}

void chunk_cipher::seal(std::uint64_t index, bool final, const std::uint8_t* plain, std::size_t n,
                        std::uint8_t* out, std::uint8_t* tag) {
  prepare(index, final, true);
  EVP_CIPHER_CTX* c = ctx_->ctx;
  int len = 0, tail = 0;
  if ((n > 0 && EVP_EncryptUpdate(c, out, &len, plain, static_cast<int>(n)) != 1) ||
      EVP_EncryptFinal_ex(c, out + len, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_bytes), tag) != 1)
    throw checkpoint_error(name_ + ": chunk " + std::to_string(index) + ": encryption failed");
}

bool chunk_cipher::try_open(std::uint64_t index, bool final, const std::uint8_t* cipher,
                            std::size_t n, const std::uint8_t* tag, std::uint8_t* out) {
  prepare(index, final, false);
  EVP_CIPHER_CTX* c = ctx_->ctx;
  int len = 0, tail = 0;
  if (n > 0 && EVP_DecryptUpdate(c, out, &len, cipher, static_cast<int>(n)) != 1) return false;
  // SET_TAG takes a non-const pointer but only reads it.
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_bytes),
                          const_cast<std::uint8_t*>(tag)) != 1)
    return false;
  return EVP_DecryptFinal_ex(c, out + len, &tail) == 1;
}

void chunk_cipher::open(std::uint64_t index, bool final, const std::uint8_t* cipher, std::size_t n,
                        const std::uint8_t* tag, std::uint8_t* out) {
  if (try_open(index, final, cipher, n, tag, out)) return;
  const std::string where = name_ + ": chunk " + std::to_string(index) + ": ";
  const bool other = try_open(index, !final, cipher, n, tag, out);
  if (n > 0) OPENSSL_cleanse(out, n);
  if (other && final)
    throw checkpoint_error(where + "authenticated as a middle chunk but the file ends there: "
                                   "the file was truncated");
  if (other && !final)
    throw checkpoint_error(where + "is the final chunk but more data follows: data was appended");
  if (index == 0)
    throw checkpoint_error(where + "authentication failed: wrong key, or the header or chunk 0 "
                                   "was modified");
  throw checkpoint_error(where + "authentication failed: the chunk was modified, reordered or "
                                 "cut short");
}

}  // namespace moat::crypto
