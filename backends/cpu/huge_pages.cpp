#include "cpu/huge_pages.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace moat::cpu {

namespace {
constexpr uintptr_t huge_page = uintptr_t{2} << 20;
#if defined(__linux__) && !defined(MADV_COLLAPSE)
constexpr int MADV_COLLAPSE = 25;  // linux/mman.h since 6.1; older libc headers lack it
#endif
}  // namespace

bool huge_pages_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("MOAT_CPU_HUGE_PAGES");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

size_t collapse_to_huge_pages(const void* p, size_t bytes) {
#if defined(__linux__)
  if (!huge_pages_enabled() || p == nullptr || bytes == 0) return 0;
  const auto begin = reinterpret_cast<uintptr_t>(p) & ~(huge_page - 1);
  const auto end = (reinterpret_cast<uintptr_t>(p) + bytes + huge_page - 1) & ~(huge_page - 1);
  // One page at a time, so that a page refused (no free huge page, a hole in the mapping)
  // does not hide the others. Advice only: an error leaves that page as it was.
  size_t got = 0;
  for (uintptr_t at = begin; at < end; at += huge_page) {
    if (::madvise(reinterpret_cast<void*>(at), huge_page, MADV_COLLAPSE) == 0) got += huge_page;
  }
  return got;
#else
  (void)p;
  (void)bytes;
  return 0;
#endif
}

}  // namespace moat::cpu
