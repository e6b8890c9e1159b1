// Per io_context bookkeeping of the host's calls (an asio service, so it lives and dies with the
// context): the calls with backend events ready to deliver, and the calls' request deadlines.
//
//   auto& queue = completion_queue::of(strand);      // once per call, at its start
//   queue.watch(c, started + request_timeout);         // before the plugin's submit
//   queue.push(std::move(ref));                        // backend thread: events are ready
//   queue.unwatch(c);                                  // the terminal event was delivered
//
// Ready calls: backend threads push; the first push of a batch posts one task, on the pushing
// call's strand, that hands every queued call its drain: inline for that strand's own call,
// posted from the I/O thread (no cross-thread wakeup) for the others.
//
// Deadlines: a watched call sits in an intrusive list with its due time, and one coarse timer
// per io_context sweeps the list every `tick` (a tenth of the shortest timeout watched, within
// 10 ms .. 1 s) and posts on_deadline() to each overdue call's strand. A request then costs a
// list link and unlink under an uncontended mutex, instead of a timer of its own whose insert
// and cancel took timer-queue work and one more handler per request (the cancelled wait's).
// A timeout fires between 0 and about one tick late. The sweep re-arms only while calls are
// watched, so an io_context without requests still runs out of work.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "host/spin_lock.h"

namespace moat::host {

class call;

class completion_queue : public boost::asio::execution_context::service {
 public:
  using clock = std::chrono::steady_clock;
  static inline boost::asio::execution_context::id id;
  explicit completion_queue(boost::asio::execution_context& ctx);
  ~completion_queue() override;

  // The queue of the io_context that runs `ex`. Each thread remembers the last context it
  // asked about and its queue, so a request costs no locked service lookup; the destruction
  // of any queue (with its context) makes every thread look up again.
  static completion_queue& of(const boost::asio::any_io_executor& ex);

  // Backend threads. `c` holds the call alive until its drain ran.
  void push(std::shared_ptr<call> c);

  // Any thread. watch() at most once per call, before its events can come; unwatch() when its
  // terminal event was delivered or it never started (and by ~call, when still watched).
  // `timeout` only sets how often the sweep looks.
  void watch(call& c, clock::time_point due, std::chrono::milliseconds timeout);
  void unwatch(call& c);

  // Calls watched now (for tests).
  size_t watched() const;

 private:
  void run();
  void arm_locked();            // deadline_mutex_ held
  void unlink_locked(call& c);  // deadline_mutex_ held; c is watched
  void sweep();
  void shutdown() override;

  // Spin locks (see spin_lock.h): each is held for a push, a swap or a list link.
  spin_lock mutex_;
  std::vector<std::shared_ptr<call>> ready_;
  bool posted_ = false;  // a run() is posted and has not yet taken the batch

  mutable spin_lock deadline_mutex_;  // also held by a sweep for one pass over the list
  call* watched_ = nullptr;  // intrusive list through call::watch_prev_ / watch_next_
  size_t watched_count_ = 0;
  clock::duration tick_ = std::chrono::seconds(1);
  bool sweep_armed_ = false;
  bool shut_down_ = false;
  // On the context's own executor when it is an io_context (always, in moat); otherwise made
  // from the first watched call's executor.
  std::optional<boost::asio::steady_timer> sweep_timer_;

  static inline std::atomic<uint64_t> generation_{0};  // bumped by every ~completion_queue
};

}  // namespace moat::host
