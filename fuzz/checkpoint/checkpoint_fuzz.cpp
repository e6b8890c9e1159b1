// libFuzzer: reading an encrypted checkpoint that is not what it claims. The input is the file
// (header, chunks, tags); the key is fixed. Every input must decrypt or throw checkpoint_error.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "crypto/checkpoint_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const moat::crypto::checkpoint_key key = moat::crypto::parse_key_hex(std::string(64, '7'), "fuzz");
  const int fd = ::memfd_create("ckpt", 0);
  if (fd < 0) return 0;
  if (::write(fd, data, size) == static_cast<ssize_t>(size)) {
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    try {
      (void)moat::crypto::decrypt_file_to_memory(path, key);
    } catch (const moat::crypto::checkpoint_error&) {
    }
  }
  ::close(fd);
  return 0;
}
