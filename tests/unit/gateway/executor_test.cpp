// util::running_here and util::post_direct tell a strand from the io_context it runs on. Boost
// 1.74's any_executor::target<T>() does not check T, so a strand once passed for "the
// io_context's own executor" and every I/O thread counted as on every connection's strand: with
// two I/O threads a connection's handlers and its backend's drain ran concurrently.
#include "util/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <thread>

namespace net = boost::asio;

TEST(executor, a_strand_is_not_its_io_context) {
  net::io_context io;
  const net::any_io_executor plain(io.get_executor());
  const net::any_io_executor strand(net::make_strand(io));
  const net::any_io_executor other(net::make_strand(io));
  EXPECT_NE(moat::util::target_of<net::io_context::executor_type>(plain), nullptr);
  EXPECT_EQ(moat::util::target_of<net::io_context::executor_type>(strand), nullptr);
  EXPECT_NE(moat::util::target_of<net::strand<net::io_context::executor_type>>(strand), nullptr);
  EXPECT_EQ(moat::util::target_of<net::io_context::executor_type>(net::any_io_executor()), nullptr);

  int checked = 0;
  net::post(io, [&] {
    // On the io_context, on no strand.
    EXPECT_TRUE(moat::util::running_here(plain));
    EXPECT_FALSE(moat::util::running_here(strand));
    ++checked;
  });
  net::post(strand, [&] {
    EXPECT_TRUE(moat::util::running_here(strand));
    EXPECT_FALSE(moat::util::running_here(other));  // another connection's strand
    ++checked;
  });
  io.run();
  EXPECT_EQ(checked, 2);
  EXPECT_FALSE(moat::util::running_here(plain));  // not running the io_context now
}

TEST(executor, post_direct_keeps_a_strands_handlers_apart) {
  // Two threads run the io_context; handlers posted to one strand must never overlap.
  net::io_context io;
  const net::any_io_executor strand(net::make_strand(io));
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> done{0};
  constexpr int handlers = 2000;
  for (int i = 0; i < handlers; ++i) {
    moat::util::post_direct(strand, [&] {
      if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
      EXPECT_TRUE(moat::util::running_here(strand));
      std::this_thread::yield();  // give the other thread a chance to overlap, were it allowed
      inside.fetch_sub(1);
      done.fetch_add(1);
    });
  }
  std::thread second([&] { io.run(); });
  io.run();
  second.join();
  EXPECT_EQ(done.load(), handlers);
  EXPECT_EQ(overlaps.load(), 0);
}
