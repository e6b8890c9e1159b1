// huge_pages: weights a decode step streams in full, backed by 2 MiB pages where the kernel
// allows it. A batch-1 step reads every weight byte once (~580 MB for a 1B model in 4-bit);
// with 4 KiB pages that is a TLB miss and a page walk every 4 KiB of each of the 16 to 64 row
// streams a kernel reads at once, which measured ~10% of the step (int4, 2 threads, CPU time).
//
//   const size_t got = moat::cpu::collapse_to_huge_pages(t.data, t.bytes());
//
// The pages are collapsed in place (MADV_COLLAPSE, Linux 6.1+): same addresses, same bytes, so
// nothing a kernel computes changes. Every 2 MiB page the range touches is collapsed, also
// where it shares that page with a neighbour (the loader's buffers are malloc'd, not 2 MiB
// aligned; only the inner pages would leave half of a 1B model's int4 weights on small pages):
// it is the process's own memory, and khugepaged does the same to any page under THP=always;
// untouched 4 KiB pages of a shared page become resident (measured: RSS unchanged within 1%).
// Where the kernel refuses (older kernel, THP off, no free huge page, a file mapping on a file
// system without large folios) the page stays as it was. Never fails.
// MOAT_CPU_HUGE_PAGES=0 turns it off.
//
// A file mapping (GGUF blocks, safetensors weights served as stored) cannot be collapsed on
// most kernels (EINVAL without CONFIG_READ_ONLY_THP_FOR_FS). Such weights are copied into a
// huge_buffer instead, and the file pages they came from are dropped from the process
// (release_file_pages): resident memory stays the same (anonymous instead of file-mapped), the
// file stays in the page cache until the kernel reclaims it.
//
//   const memory_map map;
//   if (map.in_file_mapping(t.data, t.bytes())) { huge_buffer b(t.bytes()); ... }
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moat::cpu {

// Bytes of the 2 MiB pages touching [p, p + bytes) now collapsed (0 when refused or off).
size_t collapse_to_huge_pages(const void* p, size_t bytes);

// The process's mappings as /proc/self/maps lists them when it was made: asking about many
// ranges (a model's ~150 weight tensors) costs one read of the file, not one per question.
// Stays right for ranges whose mapping is not unmapped or replaced meanwhile.
class memory_map {
 public:
  memory_map();  // reads /proc/self/maps now (nothing off Linux: every range "not a file")
  // True when [p, p + bytes) lies in one mapping of a file.
  bool in_file_mapping(const void* p, size_t bytes) const;

 private:
  struct range {
    uintptr_t lo = 0, hi = 0;
    bool file = false;  // a non-zero inode
  };
  std::vector<range> ranges_;
};

// Drops the whole 4 KiB pages of [p, p + bytes) from this process (MADV_DONTNEED). Only for a
// range in a file mapping: a later read maps the file's bytes back, so nothing is lost; on
// anonymous memory the same call would zero it, hence the check here too (false: not done),
// against `map` (a snapshot the caller already has).
bool release_file_pages(const void* p, size_t bytes, const memory_map& map);

// Anonymous memory, 2 MiB aligned, asked for huge pages before it is first written (so its
// pages are huge from the start where THP allows). Empty (data() == nullptr) when the mapping
// failed or huge pages are off. Not copyable; the memory goes with the object.
class huge_buffer {
 public:
  huge_buffer() = default;
  explicit huge_buffer(size_t bytes);
  ~huge_buffer();
  huge_buffer(huge_buffer&& o) noexcept;
  huge_buffer& operator=(huge_buffer&& o) noexcept;
  huge_buffer(const huge_buffer&) = delete;
  huge_buffer& operator=(const huge_buffer&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* map_ = nullptr;  // the mapping as mmap returned it (aligned inside)
  size_t map_bytes_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// MOAT_CPU_HUGE_PAGES unset or anything but "0".
bool huge_pages_enabled();

// model_view leaves a model alone when the weights a step reads total less than this:
// MOAT_CPU_HUGE_PAGES_MIN_MB (MiB, read at each call), default 128. The gain was measured on a
// 1.1B model (0.6-1.1 GB a step); on a small one the rounding to 2 MiB pages is a visible share
// of its memory (a 2.6 MB fixture grew by several MiB; test_planner_rss holds its resident
// memory to the plan within 10%).
size_t huge_pages_min_bytes();

}  // namespace moat::cpu
