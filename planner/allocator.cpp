#include "allocator.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <string>

#include "formats.h"

namespace moat::planner {

namespace {
// mimalloc 2.0.9 (Debian 12) minus glibc 2.36, RSS of `moat serve` with one cpu model after one
// request, less the same binary serving echo: 0.84 to 0.99 MiB over the tinystories fixture and a
// 75 MB synthetic fp32 model at threads 1, 2, 4 and 8 (two runs each, mean 0.89 MiB), the same
// at n 1, 4, 16 and 20 to 300 tokens. Nearly all of it is there after the first request.
constexpr double mimalloc_per_model_bytes = 900.0 * 1024.0;
}  // namespace

std::string_view name_of(allocator a) {
  switch (a) {
    case allocator::glibc:
      return "glibc";
    case allocator::mimalloc:
      return "mimalloc";
  }
  return "glibc";
}

allocator parse_allocator(std::string_view text) {
  if (text == "glibc") return allocator::glibc;
  if (text == "mimalloc") return allocator::mimalloc;
  throw plan_error(fmt::format("--allocator {}: must be glibc or mimalloc", std::string(text)));
}

allocator running_allocator() {
  // The moat executable links libmimalloc ahead of libc when it uses it; any other binary (the
  // planner's unit tests, a sanitizer build) has no mi_version to find.
  return dlsym(RTLD_DEFAULT, "mi_version") != nullptr ? allocator::mimalloc : allocator::glibc;
}

double allocator_bytes(allocator a) {
  return a == allocator::mimalloc ? mimalloc_per_model_bytes : 0.0;
}

}  // namespace moat::planner
