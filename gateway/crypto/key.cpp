#include "crypto/key.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace moat::crypto {

checkpoint_key::~checkpoint_key() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

checkpoint_key generate_key() {
  std::array<std::uint8_t, key_bytes> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    throw std::runtime_error("the random number generator failed");
  checkpoint_key key(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

checkpoint_key parse_key_hex(const std::string& text, const std::string& origin) {
  std::size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  // The message never includes the text: it may be a near-miss of the real key.
  if (end - begin != 2 * key_bytes)
    throw std::runtime_error(origin + ": a checkpoint key is 64 hex digits (32 bytes), found " +
                             std::to_string(end - begin) + " characters");
  std::array<std::uint8_t, key_bytes> bytes{};
  for (std::size_t i = 0; i < key_bytes; ++i) {
    const int hi = hex_value(text[begin + 2 * i]), lo = hex_value(text[begin + 2 * i + 1]);
    if (hi < 0 || lo < 0) {
      OPENSSL_cleanse(bytes.data(), bytes.size());
      throw std::runtime_error(origin + ": a checkpoint key holds hex digits only");
    }
    bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  checkpoint_key key(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

checkpoint_key load_key(const key_source& source) {
  if (!source.key_file.empty() && !source.key_env.empty())
    throw std::runtime_error("name either key_file or key_env, not both");
  if (!source.key_env.empty()) {
    const char* value = std::getenv(source.key_env.c_str());
    if (!value) throw std::runtime_error("environment variable " + source.key_env + " is not set");
    return parse_key_hex(value, "environment variable " + source.key_env);
  }
  if (source.key_file.empty()) throw std::runtime_error("no key_file or key_env given");
  std::ifstream in(source.key_file, std::ios::binary);
  if (!in) throw std::runtime_error(source.key_file + ": cannot open key file: " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > 4096) throw std::runtime_error(source.key_file + ": too large for a key file");
  auto key = parse_key_hex(text, source.key_file);
  OPENSSL_cleanse(text.data(), text.size());
  return key;
}

void write_key_file(const std::string& path, const checkpoint_key& key) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string text(2 * key_bytes + 1, '\n');
  for (std::size_t i = 0; i < key_bytes; ++i) {
    text[2 * i] = digits[key.data()[i] >> 4];
    text[2 * i + 1] = digits[key.data()[i] & 0xf];
  }
  // O_EXCL: never clobber an existing key (it may be the only copy that opens a checkpoint).
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    OPENSSL_cleanse(text.data(), text.size());
    throw std::runtime_error(path + ": cannot create key file: " + std::strerror(errno));
  }
  ::fchmod(fd, 0600);  // the umask may only remove bits, but be explicit
  const ssize_t written = ::write(fd, text.data(), text.size());
  const int close_rc = ::close(fd);
  OPENSSL_cleanse(text.data(), text.size());
  if (written != static_cast<ssize_t>(text.size()) || close_rc != 0) {
    ::unlink(path.c_str());
    throw std::runtime_error(path + ": cannot write key file");
  }
}

}  // namespace moat::crypto
