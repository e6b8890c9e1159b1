// libFuzzer: the GGUF header parser (backends/engine) on arbitrary files: it must open or
// throw model_error (bad magic, version, truncation, absurd counts), never crash or over-read.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/gguf.h"
#include "engine/model_error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = ::memfd_create("gguf", 0);
  if (fd < 0) return 0;
  if (::write(fd, data, size) == static_cast<ssize_t>(size)) {
    try {
      auto g = moat::engine::gguf_file::open("/proc/self/fd/" + std::to_string(fd));
      for (const auto& t : g->tensors()) (void)t.bytes;
    } catch (const moat::engine::model_error&) {
    }
  }
  ::close(fd);
  return 0;
}
