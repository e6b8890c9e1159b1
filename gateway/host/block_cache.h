// Per-thread caches of freed memory blocks of one size, for the host's per-request blocks (a
// call with its control block, a streamed call's event queue). A request's blocks are made on
// the I/O thread that accepts it and, almost always, freed there when its last event has been
// delivered, so a block freed on a thread is kept for that thread's next request: a take and a
// give are a few loads and stores, where the allocator's general path (size classes, and for a
// queue past ~1 KiB its page search) cost a few hundred instructions per request. A block made
// on one thread and freed on another simply joins the freeing thread's cache. At most
// `max_kept` blocks (~512 KiB) are kept per thread and size; the rest, and each thread's own at
// its exit, go back to the allocator.
//
//   void* p = moat::host::block_cache<sizeof(node)>::take();    // or ::operator new
//   moat::host::block_cache<sizeof(node)>::give(p);             // p came from take()
//
//   // A container or allocate_shared that allocates one object at a time:
//   auto c = std::allocate_shared<call>(moat::host::cached_allocator<call>(), ...);
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace moat::host {

template <size_t Size>
class block_cache {
  static_assert(Size >= sizeof(void*), "a kept block links through its first bytes");

 public:
  // About 512 KiB per thread and size: more blocks than a busy I/O thread has requests in
  // flight (a burst of requests that end together frees as many as the next burst takes).
  static constexpr uint32_t max_kept = std::clamp<size_t>((512u << 10) / Size, 16, 1024);

  static void* take() {
#if defined(__SANITIZE_ADDRESS__)
    // Under AddressSanitizer every block goes back to the allocator, which can then still
    // report a use after free.
    return ::operator new(Size);
#endif
    state& s = local;
    if (s.head != nullptr) {
      node* n = s.head;
      s.head = n->next;
      --s.count;
      return n;
    }
    return ::operator new(Size);
  }

  static void give(void* block) noexcept {
#if defined(__SANITIZE_ADDRESS__)
    return ::operator delete(block);
#endif
    state& s = local;
    if (s.count >= max_kept || s.closed) {
      ::operator delete(block);
      return;
    }
    if (s.count == 0 && s.head == nullptr) register_closer();
    node* n = ::new (block) node{s.head};
    s.head = n;
    ++s.count;
  }

 private:
  struct node {
    node* next;
  };
  // Trivially destructible, so that it stays usable while the thread's other thread_local
  // objects are destroyed (a call freed by one of them goes straight to the allocator).
  struct state {
    node* head = nullptr;
    uint32_t count = 0;
    bool closed = false;  // the thread is exiting: keep nothing more
  };
  // Frees what the thread kept when it exits. Constructed (and so registered) when the cache
  // first keeps a block; a second construction is a no-op.
  struct closer {
    ~closer() {
      state& s = local;
      s.closed = true;
      while (s.head != nullptr) {
        node* n = s.head;
        s.head = n->next;
        ::operator delete(static_cast<void*>(n));
      }
      s.count = 0;
    }
  };
  static void register_closer() noexcept {
    thread_local closer registered;
    (void)registered;
  }

  static inline thread_local state local;
};

// An allocator that takes single objects from block_cache (arrays and the like go to the heap).
template <typename T>
class cached_allocator {
 public:
  using value_type = T;
  cached_allocator() noexcept = default;
  template <typename U>
  cached_allocator(const cached_allocator<U>&) noexcept {}

  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__,
                "blocks have operator new's alignment");

  T* allocate(size_t n) {
    if (n == 1) return static_cast<T*>(block_cache<sizeof(T)>::take());
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n == 1) return block_cache<sizeof(T)>::give(p);
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const cached_allocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace moat::host
