// One accepted request on its way through a backend. The backend's threads call on_event();
// each event is copied into the call's queue, and the call is handed to its io_context's
// completion queue only when a drain is due and none is posted yet (a burst of deltas costs
// one hand-over, not one per delta). A drain is due at once for a streamed request (each delta
// reaches the client promptly), but for a whole answer only at the terminal event, or once
// lazy_cap events wait: its sink only collects until DONE anyway, and a backend answering in
// one quick burst then wakes the I/O thread once per answer, not once per delta that the I/O
// thread happened to drain on another core meanwhile. For the same reason a whole answer's
// deltas are joined per choice as they come (text and logprobs appended to the choice's
// pending delta), so the I/O thread delivers one delta, FINISH and DONE, not one per token.
// The completion queue in turn posts one task per batch of ready calls, whichever requests
// they belong to, so a backend answering many requests at once wakes the I/O threads once, not
// once per request. On the strand the call drains its queue in order, updates the model's
// metrics and hands each copy to the request's event_sink. A call outlives its sink's interest: it
// is freed only when the backend has sent its terminal event (the ABI rule), so the user_data
// pointer the backend holds never dangles.
//
//   auto outcome = backend.submit(request, sink, req.strand);
//   if (outcome.status == MOAT_OK)
//     req.client->on_gone(outcome.handle, [](call& c) { c.cancel(); });
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "host/block_cache.h"
#include "host/spin_lock.h"
#include "metrics/registry.h"
#include "moat/backend.h"
#include "openai/protocol.h"

namespace moat::host {

class backend;
class completion_queue;

// A moat_event copied out of the backend's storage. The event's token ids are not copied: no
// answer shows them (usage comes with DONE, logprobs carry their own text), and a copy was one
// allocation per delta on the backend's thread, freed on the I/O thread.
// The four enums and counters first, so that no padding sits between the members.
struct owned_event {
  moat_event_kind kind = MOAT_EVENT_ERROR;
  uint32_t index = 0;
  moat_finish_reason finish_reason = MOAT_FINISH_NONE;
  moat_status error_code = MOAT_OK;
  moat_usage usage{};
  std::string text;
  std::vector<openai::logprob_item> logprobs;
  std::vector<float> embedding;
  std::string error_message;

  owned_event() = default;
  // Copies `event` (may throw std::bad_alloc). Built in place in a call's queue: each member is
  // written once, where a default-constructed event was first cleared whole, then assigned.
  // Inline for the usual event (a delta's text, FINISH, DONE); what only some events carry
  // (logprobs, an embedding, an error message) is copied out of line.
  explicit owned_event(const moat_event& event)
      : kind(event.kind),
        index(event.index),
        finish_reason(event.finish_reason),
        error_code(event.error_code),
        usage(event.usage),
        text(event.text.data ? event.text.data : "", event.text.data ? event.text.size : 0) {
    if ((event.logprobs && event.logprob_count) || (event.embedding && event.embedding_dim) ||
        (event.error_message.data && event.error_message.size)) {
      copy_rare_parts(event);
    }
  }
  owned_event(const owned_event&) = default;
  owned_event(owned_event&&) noexcept = default;
  owned_event& operator=(const owned_event&) = default;
  owned_event& operator=(owned_event&&) noexcept = default;
  // Inline where a queue is cleared (once per event on the I/O thread): the usual event owns no
  // memory, and its members' checks cost less than the call, saves and restores around them.
  [[gnu::always_inline]] ~owned_event() {}

  bool terminal() const { return kind == MOAT_EVENT_DONE || kind == MOAT_EVENT_ERROR; }

 private:
  void copy_rare_parts(const moat_event& event);  // logprobs, embedding, error message
};

// What the API layer implements to receive a request's events, always on the request's
// strand, ending with exactly one terminal event (DONE or ERROR, possibly one the host made
// up: a timeout, or a backend that misbehaved).
class event_sink {
 public:
  virtual ~event_sink() = default;
  virtual void on_event(owned_event&& event) = 0;
};

// Storage for a whole answer's first few queued events inside its call, so that a call and
// its queue are one allocation, not two. Handed out to one vector at a time (the queue and the
// drain's batch swap buffers). A streamed answer's queue (stream_capacity events, ~2.3 KiB) is
// a block of the thread's block_cache; larger or further requests go to the heap. Used under
// the call's queue lock, or by its sole owner (construction, destruction).
struct event_arena {
  static constexpr size_t capacity = 4;  // a single choice's joined delta, FINISH and DONE
  // Room reserved for a streamed answer's events that come between two drains.
  static constexpr size_t stream_capacity = 16;
  using stream_blocks = block_cache<stream_capacity * sizeof(owned_event)>;
  alignas(owned_event) std::byte storage[capacity * sizeof(owned_event)];
  bool in_use = false;
};

template <typename T>
class arena_allocator {
 public:
  using value_type = T;
  explicit arena_allocator(event_arena& arena) noexcept : arena_(&arena) {}
  template <typename U>
  arena_allocator(const arena_allocator<U>& other) noexcept : arena_(other.arena_) {}

  T* allocate(size_t n) {
    if constexpr (std::is_same_v<T, owned_event>) {
      if (n <= event_arena::capacity && !arena_->in_use) {
        arena_->in_use = true;
        return reinterpret_cast<T*>(arena_->storage);
      }
      if (n == event_arena::stream_capacity)
        return static_cast<T*>(event_arena::stream_blocks::take());
    }
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (static_cast<void*>(p) == static_cast<void*>(arena_->storage)) {
      arena_->in_use = false;
      return;
    }
    if constexpr (std::is_same_v<T, owned_event>) {
      if (n == event_arena::stream_capacity) return event_arena::stream_blocks::give(p);
    }
    std::allocator<T>().deallocate(p, n);
  }
  // Inline, so that clearing a queue (once per event on the I/O thread) costs the members'
  // checks of each event, not a call per event.
  template <typename U>
  [[gnu::always_inline]] void destroy(U* p) noexcept {
    p->~U();
  }
  // Equal for one arena: vectors of one call swap and move their buffers without copying.
  bool operator==(const arena_allocator& other) const noexcept { return arena_ == other.arena_; }

 private:
  template <typename U>
  friend class arena_allocator;
  event_arena* arena_;
};

class call : public std::enable_shared_from_this<call> {
 public:
  // `whole_answer`: the request was not streamed (moat_request::stream == 0), so its sink
  // needs the events only by the terminal one; they are then delivered lazily (see above).
  call(backend& owner, uint64_t id, std::shared_ptr<event_sink> sink,
       const boost::asio::any_io_executor& strand, bool whole_answer = false);
  ~call();

  uint64_t id() const { return id_; }
  // On the strand: ask the backend to stop (the client left). The terminal event still comes.
  void cancel();

  // The C callback given to submit(); user_data is the call. Backend threads only.
  static void on_event(void* user_data, const moat_event* event) noexcept;

 private:
  friend class backend;
  friend class completion_queue;
  // Watched by the io_context's deadline sweep from now until the terminal event is delivered.
  void start_deadline(std::chrono::milliseconds timeout);
  void drain();                       // on the strand: delivers every queued event in order
  // On the strand; `now`: when the drain began (the event's delivery time for the metrics).
  void deliver(owned_event&& event, std::chrono::steady_clock::time_point now);
  void record_metrics(const owned_event& event, std::chrono::steady_clock::time_point now);
  void on_deadline();

  backend& owner_;
  std::shared_ptr<std::atomic<bool>> owner_alive_;
  const uint64_t id_;
  std::shared_ptr<event_sink> sink_;  // strand only; released at the terminal event
  boost::asio::any_io_executor strand_;
  completion_queue& completions_;  // the strand's io_context's
  // The completion queue's deadline list (under its lock): when the request times out, the
  // links, and whether it is listed (cleared by the sweep that times it out, or by unwatch).
  std::chrono::steady_clock::time_point due_;
  call* watch_prev_ = nullptr;
  call* watch_next_ = nullptr;
  bool watched_ = false;
  // The backend's reference (under queue_lock_): dropped with its terminal event.
  std::shared_ptr<call> self_;

  // Events a whole answer keeps queued before a drain is due anyway (its deltas are joined, so
  // this counts choices' events, or embeddings): bounds what waits for the I/O thread, while a
  // short answer (most) still goes over in one hand-over.
  static constexpr size_t lazy_cap = 64;

  // Backend threads push, the strand drains. A drain is posted when one is due and
  // drain_posted_ is false (it is cleared by the drain when it takes the queue), and that
  // posted drain holds a reference that keeps the call alive.
  using event_queue = std::vector<owned_event, arena_allocator<owned_event>>;
  spin_lock queue_lock_;
  event_arena arena_;  // before the queues that use it: it outlives them
  event_queue pending_{arena_allocator<owned_event>(arena_)};
  bool drain_posted_ = false;
  // Whole answers: when the first delta and the latest FINISH reached the call (metrics would
  // otherwise time them at the lazy drain, i.e. at the end).
  std::chrono::steady_clock::time_point first_delta_at_;
  std::chrono::steady_clock::time_point last_finish_at_;
  // Strand only: swapped with pending_ by a drain, which delivers from it and clears it (no
  // drain runs inside another: a call's drain is always posted, never run by on_event).
  event_queue draining_{arena_allocator<owned_event>(arena_)};
  const bool lazy_;

  // Strand-only bookkeeping.
  bool finished_ = false;    // the sink saw its terminal event
  bool cancelled_ = false;
  moat_finish_reason last_finish_ = MOAT_FINISH_NONE;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point first_token_;
  std::chrono::steady_clock::time_point last_token_;
  std::chrono::steady_clock::time_point drained_first_delta_at_;  // copies taken by drain()
  std::chrono::steady_clock::time_point drained_last_finish_at_;
  bool saw_token_ = false;
};

}  // namespace moat::host
