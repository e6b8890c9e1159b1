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
#pragma once

#include <cstddef>

namespace moat::cpu {

// Bytes of the 2 MiB pages touching [p, p + bytes) now collapsed (0 when refused or off).
size_t collapse_to_huge_pages(const void* p, size_t bytes);

// MOAT_CPU_HUGE_PAGES unset or anything but "0".
bool huge_pages_enabled();

}  // namespace moat::cpu
