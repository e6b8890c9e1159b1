// Coarse connection deadlines: a connection stores when it must be cut (one relaxed atomic store
// per phase), and one server-wide timer sweeps every `tick` and expires the overdue. This
// replaces Beast's per-operation expiry, which re-armed a timer (and often the reactor's
// timerfd) on every read and write of every request. A cut comes between 0 and one tick late.
//
//   moat::http::deadline_sweeper sweeper(std::chrono::milliseconds(100));  // outlives `io`
//   sweeper.start(io);
//   struct conn : moat::http::timed_connection { void expire() override { /* post a close */ } };
//   conn c;  sweeper.add(c);  c.set_deadline(std::chrono::seconds(3));  ...  sweeper.remove(c);
#pragma once

#include <time.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace moat::http {

class deadline_sweeper;

// A connection the sweeper watches. expire() is called on the sweeper's thread with the
// sweeper's lock held: it must only post work (e.g. a close onto the connection's strand), and
// that work must check overdue() again, since the deadline may have moved meanwhile.
class timed_connection {
 public:
  using clock = std::chrono::steady_clock;
  virtual ~timed_connection() = default;

  void set_deadline(std::chrono::milliseconds from_now) {
    due_.store(coarse_now() + std::chrono::duration_cast<clock::duration>(from_now).count(),
               std::memory_order_relaxed);
  }
  void clear_deadline() { due_.store(never, std::memory_order_relaxed); }
  // True when a deadline is set and passed (the connection checks again on its strand: it may
  // have been re-armed after the sweep saw it).
  bool overdue(clock::time_point now) const {
    return due_.load(std::memory_order_relaxed) <= now.time_since_epoch().count();
  }

 protected:
  virtual void expire() = 0;

 private:
  friend class deadline_sweeper;
  static constexpr int64_t never = INT64_MAX;
  // clock's time as of the kernel's last timer tick (a few ms behind), in clock's ticks: the
  // same clock as steady_clock (CLOCK_MONOTONIC), read without the TSC read and conversion that
  // a precise read costs, twice per request. A deadline set from it comes at most a tick early,
  // against a sweep every 100 ms.
  static int64_t coarse_now() {
#ifdef CLOCK_MONOTONIC_COARSE
    timespec ts{};
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0) {
      return std::chrono::duration_cast<clock::duration>(std::chrono::seconds(ts.tv_sec) +
                                                         std::chrono::nanoseconds(ts.tv_nsec))
          .count();
    }
#endif
    return clock::now().time_since_epoch().count();
  }
  std::atomic<int64_t> due_{never};
  // Intrusive list links, guarded by the sweeper's mutex.
  timed_connection* prev_ = nullptr;
  timed_connection* next_ = nullptr;
};

class deadline_sweeper {
 public:
  explicit deadline_sweeper(std::chrono::milliseconds tick) : tick_(tick) {}
  deadline_sweeper(const deadline_sweeper&) = delete;
  deadline_sweeper& operator=(const deadline_sweeper&) = delete;

  // Arms the periodic sweep on `io` (whose threads run it). Once, before io runs.
  void start(boost::asio::io_context& io);
  // Any thread: no sweep runs after this (the pending wait ends with the io_context).
  void stop();
  // Destroys the timer. Call while `io` exists but no longer runs. The connection list stays
  // usable: connections destroyed with io's pending handlers still remove() themselves.
  void release() { timer_.reset(); }

  // Any thread. remove() must run before the connection's members are destroyed (first thing in
  // the most derived destructor), so a concurrent sweep never calls into a half-destroyed object.
  void add(timed_connection& c);
  void remove(timed_connection& c);

  size_t size() const;

 private:
  void arm();
  void sweep();

  std::optional<boost::asio::steady_timer> timer_;  // io thread only
  const std::chrono::milliseconds tick_;
  mutable std::mutex mutex_;
  timed_connection* head_ = nullptr;
  size_t count_ = 0;
  bool stopped_ = true;
};

}  // namespace moat::http
