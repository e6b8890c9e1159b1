// The CPU thread pool under the conditions a shared machine creates: more threads than cores
// (a worker often runs late, after the others claimed every chunk, and must neither run a chunk
// twice nor touch a finished job), many short jobs back to back, slow chunks, and errors.
#include "cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace moat::test {
namespace {

// Every index of every job is visited exactly once, with 8 threads on however few cores.
TEST(thread_pool, many_short_jobs_cover_every_index_once) {
  cpu::thread_pool pool(8);
  std::vector<std::atomic<int>> hits(257);
  int64_t total = 0;
  for (int job = 0; job < 20000; ++job) {
    const int64_t n = 1 + job % 257;
    pool.parallel_for(n, [&](int64_t b, int64_t e, int worker) {
      ASSERT_GE(worker, 0);
      ASSERT_LT(worker, 8);
      for (int64_t i = b; i < e; ++i)
        hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
    });
    total += n;
  }
  int64_t seen = 0;
  for (size_t i = 0; i < hits.size(); ++i) seen += hits[i].load();
  EXPECT_EQ(seen, total);
  // Index i belongs to the jobs with n > i: 20000 jobs cycle through n = 1..257.
  for (size_t i = 0; i < hits.size(); ++i) {
    int want = 0;
    for (int job = 0; job < 20000; ++job) want += (1 + job % 257) > static_cast<int>(i);
    ASSERT_EQ(hits[i].load(), want) << "index " << i;
  }
}

// A chunk that sleeps makes the other threads finish and come back for the next job while one
// is still busy; results of consecutive jobs never mix.
TEST(thread_pool, slow_chunks_and_back_to_back_jobs_do_not_mix) {
  cpu::thread_pool pool(4);
  for (int job = 0; job < 200; ++job) {
    std::vector<int> out(64, -1);
    pool.parallel_for(64, [&](int64_t b, int64_t e, int) {
      if (b == 0 && job % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
      for (int64_t i = b; i < e; ++i) out[static_cast<size_t>(i)] = job;
    });
    for (int v : out) ASSERT_EQ(v, job);
  }
}

TEST(thread_pool, an_error_skips_the_rest_and_the_pool_stays_usable) {
  cpu::thread_pool pool(3);
  for (int round = 0; round < 50; ++round) {
    EXPECT_THROW(pool.parallel_for(100,
                                   [](int64_t b, int64_t, int) {
                                     if (b == 0) throw std::runtime_error("chunk 0");
                                   }),
                 std::runtime_error);
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    ASSERT_EQ(sum.load(), 999 * 1000 / 2);
  }
}

// Idle workers sleep after their spin: a pool left alone for longer than the spin still runs
// the next job (the wake-up path).
TEST(thread_pool, wakes_sleeping_workers) {
  cpu::thread_pool pool(4);
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::microseconds(cpu::thread_pool::spin_us() * 3 + 1000));
    std::vector<std::atomic<int>> by_worker(4);
    pool.parallel_for(4000, [&](int64_t b, int64_t e, int worker) {
      by_worker[static_cast<size_t>(worker)] += static_cast<int>(e - b);
    });
    int total = 0;
    for (auto& v : by_worker) total += v.load();
    ASSERT_EQ(total, 4000);
  }
}

// The caller does not do all the work alone: with chunks that take a while, every worker gets
// some (it wakes within the first chunk's 2 ms, whether it was spinning or asleep).
TEST(thread_pool, workers_take_part) {
  cpu::thread_pool pool(2);
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(
        std::chrono::microseconds(round * (cpu::thread_pool::spin_us() * 3 + 1000)));
    std::vector<std::atomic<int>> by_worker(2);
    pool.parallel_for(8, [&](int64_t, int64_t, int worker) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      ++by_worker[static_cast<size_t>(worker)];
    });
    EXPECT_EQ(by_worker[0].load() + by_worker[1].load(), 8);
    EXPECT_GT(by_worker[1].load(), 0) << "round " << round;
  }
}

}  // namespace
}  // namespace moat::test
