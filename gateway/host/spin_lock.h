// The lock of one call's event queue: taken by the backend's thread once per event (held for
// the event's copy) and by the strand once per drain (held for a swap), almost never by both
// at once. Uncontended it costs one exchange and one store, where a pthread mutex costs a
// locked compare-exchange, a locked decrement and two calls; on the rare collision the waiter
// spins a little, then yields its core (on a busy machine it may be the one the holder needs).
//
//   moat::host::spin_lock lock;
//   { std::lock_guard guard(lock); /* ... */ }
#pragma once

#include <atomic>
#include <thread>

namespace moat::host {

class spin_lock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      // Wait on a plain load (no cache-line ping-pong from repeated exchanges).
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 64) {
          relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  std::atomic<bool> locked_{false};
};

}  // namespace moat::host
