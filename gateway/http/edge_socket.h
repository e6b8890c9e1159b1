// A plain-HTTP connection's socket whose readiness we track ourselves, edge-triggered, so that a
// keep-alive read costs one recv instead of two. Asio 1.74's reactor tries a speculative recv on
// every async_read_some and keeps trying until a recv returns 0 bytes, so each next request
// started with a recv that returned EAGAIN (the client waits for our answer before it sends
// again). Here, as nginx does: every socket is registered once in one epoll set of our own
// (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, never modified), a recv that returned less than
// its buffer means "drained", and the next read waits for the next edge without a syscall. The
// epoll set itself is watched by Asio (one async_wait per wake-up of the I/O thread, i.e. per
// batch of events, not per request).
//
//   edge_poller poller;                       // outlives the io_context's handlers (see below)
//   poller.start(io);                         // io is run by ONE thread
//   edge_socket s(poller, accepted.release(), io.get_executor());
//   s.async_read_some(buf, [](error_code ec, size_t n) { ... });   // never completes inline
//
// edge_socket is an Asio AsyncReadStream/AsyncWriteStream (net::async_write works on it) and
// offers the few tcp::socket calls basic_session makes on its lowest layer. Everything runs on
// the one thread that runs the io_context: nothing here is locked, so the server uses it only
// with server.threads 1 (more I/O threads keep Asio's sockets and strands).
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace moat::http {

// A move-only void(Args...) kept inline when small (the session's handlers: a shared_ptr and a
// word or two), on the heap otherwise (Asio's composed write op). No allocation per read.
template <class... Args>
class stored_handler {
 public:
  stored_handler() = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, stored_handler>>>
  explicit stored_handler(F&& f) {
    emplace(std::forward<F>(f));
  }
  stored_handler(stored_handler&& other) noexcept { take(other); }
  stored_handler& operator=(stored_handler&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  stored_handler(const stored_handler&) = delete;
  stored_handler& operator=(const stored_handler&) = delete;
  ~stored_handler() { reset(); }

  explicit operator bool() const { return vt_ != nullptr; }

  // Empties this first and calls a moved-out copy: the call may destroy whatever held this.
  void invoke(Args... args) {
    stored_handler local(std::move(*this));
    local.vt_->call(local.buf_, args...);
  }
  void reset() {
    if (vt_ != nullptr) vt_->destroy(buf_);
    vt_ = nullptr;
  }

 private:
  static constexpr size_t inline_bytes = 48;
  struct vtable {
    void (*call)(void*, Args...);
    void (*relocate)(void* from, void* to);  // move-construct at `to`, destroy `from`
    void (*destroy)(void*);
  };

  template <class F>
  void emplace(F&& f) {
    using T = std::decay_t<F>;
    if constexpr (sizeof(T) <= inline_bytes && alignof(T) <= alignof(std::max_align_t) &&
                  std::is_nothrow_move_constructible_v<T>) {
      ::new (static_cast<void*>(buf_)) T(std::forward<F>(f));
      static constexpr vtable vt{[](void* p, Args... a) { (*static_cast<T*>(p))(a...); },
                                 [](void* from, void* to) {
                                   ::new (to) T(std::move(*static_cast<T*>(from)));
                                   static_cast<T*>(from)->~T();
                                 },
                                 [](void* p) { static_cast<T*>(p)->~T(); }};
      vt_ = &vt;
    } else {
      *static_cast<T**>(static_cast<void*>(buf_)) = new T(std::forward<F>(f));
      static constexpr vtable vt{
          [](void* p, Args... a) { (**static_cast<T**>(p))(a...); },
          [](void* from, void* to) { *static_cast<T**>(to) = *static_cast<T**>(from); },
          [](void* p) { delete *static_cast<T**>(p); }};
      vt_ = &vt;
    }
  }
  void take(stored_handler& other) noexcept {
    if (other.vt_ == nullptr) return;
    other.vt_->relocate(other.buf_, buf_);
    vt_ = other.vt_;
    other.vt_ = nullptr;
  }

  alignas(std::max_align_t) unsigned char buf_[inline_bytes];
  const vtable* vt_ = nullptr;
};

class edge_poller;

// One connection's readiness and pending operations; owned by its edge_socket (heap, so the
// socket can move), pointed to by the epoll set's event data.
struct edge_core {
  using error_code = boost::system::error_code;
  using io_handler = stored_handler<error_code, size_t>;
  using wait_handler = stored_handler<error_code>;
  static constexpr int max_iov = 16;

  edge_poller* poller = nullptr;
  int fd = -1;
  boost::asio::any_io_executor executor;
  // What the last edge or syscall said: readable until a recv returned less than its buffer or
  // EAGAIN; writable until a send returned EAGAIN.
  bool readable = false;
  bool writable = true;

  boost::asio::mutable_buffer read_buf;
  io_handler on_read;
  std::array<iovec, max_iov> write_iov{};
  int write_count = 0;
  io_handler on_write;
  wait_handler on_readable;

  edge_core* prev = nullptr;  // the poller's list of live cores (to drop handlers at stop)
  edge_core* next = nullptr;

  // One recv / sendmsg (retried on EINTR) on the open fd; EAGAIN clears readable / writable and
  // reads as would_block. The socket's own calls and the try_ ones below share them.
  size_t recv(boost::asio::mutable_buffer buffer, int flags, error_code& ec);
  size_t send(iovec* iov, int count, int flags, error_code& ec);
  // One syscall each; false: EAGAIN (the op stays pending), true: ec/n are the result.
  bool try_read(error_code& ec, size_t& n);
  bool try_write(error_code& ec, size_t& n);
  // The poller's delivery of one epoll event: syscalls first, then the handlers, since a
  // handler may destroy this core.
  void on_events(uint32_t events);
  // Closes the fd (leaving the epoll set) and completes pending ops with operation_aborted.
  void close();
  // Leaves the poller and closes the fd, in that order (no queued event may reach a closed
  // core); nothing else. close() and ~edge_socket share it.
  void release_fd();
};

// The epoll set of one io_context's plain connections, watched by Asio. Declare it before the
// io_context it is started on: handlers still queued there when the io_context is destroyed may
// hold sessions whose sockets deregister here. stop() (the io_context no longer running) drops
// the handlers of pending operations, which hold their sessions alive.
class edge_poller {
 public:
  edge_poller() = default;
  ~edge_poller();
  edge_poller(const edge_poller&) = delete;
  edge_poller& operator=(const edge_poller&) = delete;

  // Creates the epoll set and starts watching it on `io`. Throws std::system_error.
  void start(boost::asio::io_context& io);
  void stop();
  bool running() const { return watcher_.has_value() && !stopped_; }

  // For tests and the bench (read from any thread): wake-ups of the I/O thread for this set,
  // recvs made for reads, and those of them that found nothing (EAGAIN).
  struct counters {
    uint64_t wakeups = 0;
    uint64_t reads = 0;
    uint64_t reads_blocked = 0;
  };
  counters stats() const {
    return {wakeups_.load(std::memory_order_relaxed), reads_.load(std::memory_order_relaxed),
            reads_blocked_.load(std::memory_order_relaxed)};
  }

 private:
  friend class edge_socket;
  friend struct edge_core;
  bool add(edge_core& core);     // false: errno says why
  void forget(edge_core& core);  // before its fd closes: drops its events still in this batch
  void arm();
  void on_ready();

  int epfd_ = -1;
  std::optional<boost::asio::posix::stream_descriptor> watcher_;
  bool stopped_ = false;
  std::array<epoll_event, 64> batch_{};  // the events being delivered now
  int batch_size_ = 0;
  int cursor_ = 0;
  edge_core* live_ = nullptr;
  // Written by the I/O thread only: a load and a store, no locked add.
  static void bump(std::atomic<uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> wakeups_{0};
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> reads_blocked_{0};
};

class edge_socket {
 public:
  using executor_type = boost::asio::any_io_executor;
  using error_code = boost::system::error_code;
  using tcp = boost::asio::ip::tcp;

  // Takes `fd` (a connected TCP socket, e.g. tcp::socket::release()), makes it non-blocking and
  // registers it. On failure the socket is closed and every operation fails with bad_descriptor.
  edge_socket(edge_poller& poller, int fd, executor_type executor);
  edge_socket(edge_socket&&) noexcept = default;
  edge_socket& operator=(edge_socket&&) = delete;
  ~edge_socket();

  executor_type get_executor() const { return core_->executor; }
  bool is_open() const { return core_->fd >= 0; }

  // Completes through the executor when data (or EOF, or an error) is there now, else on the
  // next readable edge, never inside this call.
  template <class MutableBuffers, class Handler>
  void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    edge_core& c = *core_;
    const boost::asio::mutable_buffer b = first_buffer(buffers);
    error_code ec;
    size_t n = 0;
    if (c.fd < 0)
      return post(std::forward<Handler>(handler), boost::asio::error::bad_descriptor, 0);
    if (b.size() == 0) return post(std::forward<Handler>(handler), ec, 0);
    c.read_buf = b;
    if (c.readable && c.try_read(ec, n)) return post(std::forward<Handler>(handler), ec, n);
    if (stopping()) return;  // the io_context is gone: the handler would never run
    c.on_read = edge_core::io_handler(std::forward<Handler>(handler));
  }

  template <class ConstBuffers, class Handler>
  void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    edge_core& c = *core_;
    error_code ec;
    size_t n = 0;
    if (c.fd < 0)
      return post(std::forward<Handler>(handler), boost::asio::error::bad_descriptor, 0);
    c.write_count = gather(buffers, c.write_iov);
    if (c.write_count == 0) return post(std::forward<Handler>(handler), ec, 0);
    if (c.writable && c.try_write(ec, n)) return post(std::forward<Handler>(handler), ec, n);
    if (stopping()) return;
    c.on_write = edge_core::io_handler(std::forward<Handler>(handler));
  }

  // What basic_session calls on a tcp::socket (its lowest layer), with the same meaning.
  template <class Handler>
  void async_wait(tcp::socket::wait_type /* wait_read only */, Handler&& handler) {
    edge_core& c = *core_;
    if (c.fd < 0)
      return post_wait(std::forward<Handler>(handler), boost::asio::error::bad_descriptor);
    if (c.readable) return post_wait(std::forward<Handler>(handler), error_code());
    if (stopping()) return;
    c.on_readable = edge_core::wait_handler(std::forward<Handler>(handler));
  }
  template <class ConstBuffers>
  size_t send(const ConstBuffers& buffers, int flags, error_code& ec) {
    std::array<iovec, edge_core::max_iov> iov;
    return send_iov(iov.data(), gather(buffers, iov), flags, ec);
  }
  size_t receive(boost::asio::mutable_buffer buffer, int flags, error_code& ec);
  void shutdown(tcp::socket::shutdown_type what, error_code& ec);
  void close(error_code& ec);
  tcp::endpoint remote_endpoint(error_code& ec) const;
  void non_blocking(bool, error_code& ec) { ec = {}; }  // always non-blocking

 private:
  template <class Buffers>
  static boost::asio::mutable_buffer first_buffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer b(*it);
      if (b.size() > 0) return b;
    }
    return {};
  }
  // Up to max_iov non-empty buffers (a longer sequence is sent in parts, as Asio does).
  template <class Buffers>
  static int gather(const Buffers& buffers, std::array<iovec, edge_core::max_iov>& iov) {
    int count = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && count < edge_core::max_iov; ++it) {
      boost::asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
    }
    return count;
  }
  size_t send_iov(iovec* iov, int count, int flags, error_code& ec);
  bool stopping() const;

  template <class Handler>
  void post(Handler&& handler, error_code ec, size_t n) {
    boost::asio::post(core_->executor,
                      [h = std::forward<Handler>(handler), ec, n]() mutable { h(ec, n); });
  }
  template <class Handler>
  void post_wait(Handler&& handler, error_code ec) {
    boost::asio::post(core_->executor,
                      [h = std::forward<Handler>(handler), ec]() mutable { h(ec); });
  }

  std::unique_ptr<edge_core> core_;
};

}  // namespace moat::http
