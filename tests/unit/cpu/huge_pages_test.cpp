// collapse_to_huge_pages: the bytes of the range and of its neighbours on the same 2 MiB pages
// stay as they were, the count is whole 2 MiB pages, and where the kernel did collapse, the
// process's AnonHugePages shows it. Where THP is off or refused, the call changes nothing.
#include "cpu/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace moat::cpu {
namespace {

constexpr size_t mib = size_t{1} << 20;

// AnonHugePages of /proc/self/smaps_rollup in KiB (-1 where it cannot be read).
long anon_huge_kib() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "AnonHugePages:") return in >> value ? value : -1;
    in.ignore(1 << 10, '\n');
  }
  return -1;
}

TEST(huge_pages, keeps_every_byte_and_counts_whole_pages) {
  // 9 MiB with a pattern, from new[] (not 2 MiB aligned, like the loader's buffers); the
  // weights are the middle 6 MiB, the rest are neighbours sharing their edge pages.
  const size_t n = 9 * mib;
  auto buf = std::make_unique<uint8_t[]>(n);
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
  const long before = anon_huge_kib();
  const size_t got = collapse_to_huge_pages(buf.get() + mib + 123, 6 * mib);
  EXPECT_EQ(got % (2 * mib), 0u);
  EXPECT_LE(got, 8 * mib);  // 6 MiB at an odd offset touch at most 4 pages
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(buf[i], static_cast<uint8_t>(i * 2654435761u >> 13)) << "byte " << i;
  }
  if (got == 0) {
    GTEST_SKIP() << "no page collapsed here (THP off, MADV_COLLAPSE unsupported or "
                    "MOAT_CPU_HUGE_PAGES=0): only the bytes were checked";
  }
  if (before >= 0) {
    EXPECT_GE(anon_huge_kib(), before + 2048);
  }
}

TEST(huge_pages, empty_and_null_ranges_do_nothing) {
  EXPECT_EQ(collapse_to_huge_pages(nullptr, 4 * mib), 0u);
  std::vector<uint8_t> v(16, 7);
  EXPECT_EQ(collapse_to_huge_pages(v.data(), 0), 0u);
  for (uint8_t b : v) EXPECT_EQ(b, 7);
}

}  // namespace
}  // namespace moat::cpu
