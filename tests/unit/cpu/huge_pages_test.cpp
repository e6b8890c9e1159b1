// collapse_to_huge_pages: the bytes of the range and of its neighbours on the same 2 MiB pages
// stay as they were, the count is whole 2 MiB pages, and where the kernel did collapse, the
// process's AnonHugePages shows it. Where THP is off or refused, the call changes nothing.
// memory_map::in_file_mapping / release_file_pages on a file mapping and on the heap; model_view's copies
// of file-mapped weights hold the file's bytes.
#include "cpu/huge_pages.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cpu/model_view.h"
#include "engine/loader.h"

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
  // At least one huge page in the process now (not a difference: under THP=always the heap
  // may have had them already, and collapsing a huge page again succeeds without a change).
  if (const long kib = anon_huge_kib(); kib >= 0) {
    EXPECT_GE(kib, 2048);
  }
}

TEST(huge_pages, empty_and_null_ranges_do_nothing) {
  EXPECT_EQ(collapse_to_huge_pages(nullptr, 4 * mib), 0u);
  std::vector<uint8_t> v(16, 7);
  EXPECT_EQ(collapse_to_huge_pages(v.data(), 0), 0u);
  for (uint8_t b : v) EXPECT_EQ(b, 7);
}

TEST(huge_pages, file_pages_released_read_back_the_file_and_heap_is_refused) {
  const auto path =
      std::filesystem::temp_directory_path() / ("moat_huge_pages_" + std::to_string(::getpid()));
  const size_t n = 256 << 10;
  std::vector<uint8_t> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = static_cast<uint8_t>(i * 7 + 3);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(want.data()), static_cast<std::streamsize>(n));
  }
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* m = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  std::filesystem::remove(path);
  ASSERT_NE(m, MAP_FAILED);
  const auto* p = static_cast<const uint8_t*>(m);
  EXPECT_EQ(std::memcmp(p, want.data(), n), 0);
  const memory_map map;
  EXPECT_TRUE(map.in_file_mapping(p + 100, n - 200));
  EXPECT_FALSE(map.in_file_mapping(p + 100, n));  // runs past the mapping
  EXPECT_TRUE(release_file_pages(p + 100, n - 200, map));
  EXPECT_EQ(std::memcmp(p, want.data(), n), 0);  // mapped back from the file
  ::munmap(m, n);

  std::vector<uint8_t> heap(n, 5);
  const memory_map after;  // the file mapping is gone; the heap vector is new
  EXPECT_FALSE(after.in_file_mapping(heap.data(), n));
  EXPECT_FALSE(release_file_pages(heap.data(), n, after));
  for (size_t i = 0; i < n; i += 4096) ASSERT_EQ(heap[i], 5) << i;
}

TEST(huge_pages, buffer_is_aligned_and_owned) {
  huge_buffer b(3 * mib + 5);
  if (b.data() == nullptr) {
    GTEST_SKIP() << "huge pages off (MOAT_CPU_HUGE_PAGES=0) or mmap refused";
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (2 * mib), 0u);
  EXPECT_EQ(b.size(), 3 * mib + 5);
  std::memset(b.data(), 9, b.size());
  huge_buffer c(std::move(b));
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(c.data()[3 * mib + 4], 9);
}

// A model served as stored: the linear weights sit in the safetensors / GGUF mapping, and
// model_view reads copies of them (when huge pages are on) with the file's bytes.
TEST(huge_pages, model_view_copies_file_mapped_weights_bit_for_bit) {
  // The fixtures are far below the default size limit: lifted for this test.
  ::setenv("MOAT_CPU_HUGE_PAGES_MIN_MB", "0", 1);
  struct restore {
    ~restore() { ::unsetenv("MOAT_CPU_HUGE_PAGES_MIN_MB"); }
  } restore_env;
  for (const char* rel :
       {"tinystories-656K-hf", "llama2-tiny-random-gguf/llama-2-tiny-random.gguf"}) {
    const std::filesystem::path path = std::filesystem::path(MOAT_FIXTURES_DIR) / rel;
    if (!std::filesystem::exists(path)) {
      GTEST_SKIP() << "fixture " << path << " is absent";
    }
    const engine::loaded_model m = engine::load_model(path);
    const model_view mv(m);
    int copied = 0;
    const memory_map map;
    auto check = [&](const engine::tensor& src, const engine::tensor& seen) {
      ASSERT_EQ(src.bytes(), seen.bytes()) << src.name;
      const bool mapped = map.in_file_mapping(src.data, src.bytes());
      if (huge_pages_enabled() && mapped) {
        EXPECT_NE(src.data, seen.data) << src.name << ": a file-mapped weight is copied";
        ++copied;
      }
      EXPECT_EQ(std::memcmp(src.data, seen.data, src.bytes()), 0) << src.name;
    };
    for (size_t l = 0; l < m.weights.layers.size(); ++l) {
      const auto& a = m.weights.layers[l];
      const auto& b = mv.w.layers[l];
      check(a.wq, b.wq);
      check(a.wk, b.wk);
      check(a.wv, b.wv);
      check(a.wo, b.wo);
      check(a.w_gate, b.w_gate);
      check(a.w_up, b.w_up);
      check(a.w_down, b.w_down);
    }
    check(m.weights.lm_head, mv.w.lm_head);
    if (m.weights.lm_head.data == m.weights.embed.data) {
      EXPECT_EQ(mv.w.embed.data, mv.w.lm_head.data) << rel;
    }
    if (huge_pages_enabled()) {
      EXPECT_GT(copied, 0) << rel << ": no weight in a file mapping?";
    }
  }
}

// Below the size limit (the default 128 MiB) model_view keeps a small model as it is.
TEST(huge_pages, small_models_are_left_as_they_are) {
  const std::filesystem::path path =
      std::filesystem::path(MOAT_FIXTURES_DIR) / "tinystories-656K-hf";
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << "fixture " << path << " is absent";
  }
  ::unsetenv("MOAT_CPU_HUGE_PAGES_MIN_MB");
  const engine::loaded_model m = engine::load_model(path);
  const model_view mv(m);
  EXPECT_EQ(mv.w.layers[0].wq.data, m.weights.layers[0].wq.data);
  EXPECT_EQ(mv.w.lm_head.data, m.weights.lm_head.data);
}

}  // namespace
}  // namespace moat::cpu
