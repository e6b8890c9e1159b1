#include "cpu/huge_pages.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

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

size_t huge_pages_min_bytes() {
  const char* v = std::getenv("MOAT_CPU_HUGE_PAGES_MIN_MB");
  char* end = nullptr;
  const unsigned long long mb = v != nullptr ? std::strtoull(v, &end, 10) : 0;
  if (v == nullptr || end == v || mb > (size_t{1} << 20)) return size_t{128} << 20;
  return static_cast<size_t>(mb) << 20;
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

memory_map::memory_map() {
#if defined(__linux__)
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    // start-end perms offset dev inode [path]
    std::istringstream in(line);
    std::string span, perms, offset, dev;
    unsigned long long inode = 0;
    if (!(in >> span >> perms >> offset >> dev >> inode)) continue;
    const size_t dash = span.find('-');
    if (dash == std::string::npos) continue;
    range r;
    r.lo = static_cast<uintptr_t>(std::strtoull(span.substr(0, dash).c_str(), nullptr, 16));
    r.hi = static_cast<uintptr_t>(std::strtoull(span.substr(dash + 1).c_str(), nullptr, 16));
    r.file = inode != 0;
    ranges_.push_back(r);
  }
#endif
}

bool memory_map::in_file_mapping(const void* p, size_t bytes) const {
  const auto begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  for (const range& r : ranges_) {
    if (begin >= r.lo && begin < r.hi) return r.file && end <= r.hi;
  }
  return false;
}

bool release_file_pages(const void* p, size_t bytes, const memory_map& map) {
#if defined(__linux__)
  if (!map.in_file_mapping(p, bytes)) return false;
  constexpr uintptr_t page = 4096;
  const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const auto end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (end <= begin) return true;
  return ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) == 0;
#else
  (void)p;
  (void)bytes;
  (void)map;
  return false;
#endif
}

huge_buffer::huge_buffer(size_t bytes) {
#if defined(__linux__)
  if (!huge_pages_enabled() || bytes == 0) return;
  const size_t rounded = (bytes + huge_page - 1) & ~(huge_page - 1);
  void* m = ::mmap(nullptr, rounded + huge_page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return;
  map_ = m;
  map_bytes_ = rounded + huge_page;
  data_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(m) + huge_page - 1) &
                                     ~(huge_page - 1));
  size_ = bytes;
  ::madvise(data_, rounded, MADV_HUGEPAGE);  // advice: 4 KiB pages where refused
#else
  (void)bytes;
#endif
}

huge_buffer::~huge_buffer() {
#if defined(__linux__)
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
#endif
}

huge_buffer::huge_buffer(huge_buffer&& o) noexcept
    : map_(std::exchange(o.map_, nullptr)),
      map_bytes_(std::exchange(o.map_bytes_, 0)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

huge_buffer& huge_buffer::operator=(huge_buffer&& o) noexcept {
  if (this != &o) {
    huge_buffer old(std::move(*this));
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

}  // namespace moat::cpu
