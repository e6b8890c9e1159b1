#include "http/edge_socket.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

namespace moat::http {

namespace net = boost::asio;
using error_code = boost::system::error_code;

namespace {

error_code errno_code(int e) {
  return error_code(e, boost::system::system_category());
}

bool would_block(int e) {
  return e == EAGAIN || e == EWOULDBLOCK;
}

}  // namespace

// ---- edge_core ---------------------------------------------------------------------------------

size_t edge_core::recv(net::mutable_buffer buffer, int flags, error_code& ec) {
  for (;;) {
    const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), flags);
    if (got > 0) {
      ec = {};
      return static_cast<size_t>(got);
    }
    if (got == 0) {
      // The end stays readable: every later read sees it too.
      ec = buffer.size() == 0 ? error_code() : error_code(net::error::eof);
      return 0;
    }
    if (errno == EINTR) continue;
    if (would_block(errno)) {
      readable = false;
      ec = net::error::would_block;
    } else {
      ec = errno_code(errno);
    }
    return 0;
  }
}

size_t edge_core::send(iovec* iov, int count, int flags, error_code& ec) {
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(count);
  for (;;) {
    const ssize_t sent = ::sendmsg(fd, &msg, flags | MSG_NOSIGNAL);
    if (sent >= 0) {
      ec = {};
      return static_cast<size_t>(sent);
    }
    if (errno == EINTR) continue;
    if (would_block(errno)) {
      writable = false;
      ec = net::error::would_block;
    } else {
      ec = errno_code(errno);
    }
    return 0;
  }
}

bool edge_core::try_read(error_code& ec, size_t& n) {
  if (poller != nullptr) edge_poller::bump(poller->reads_);
  n = recv(read_buf, 0, ec);
  if (ec == net::error::would_block) {
    if (poller != nullptr) edge_poller::bump(poller->reads_blocked_);
    return false;
  }
  // Less than asked: the receive queue is empty now, and new bytes will raise an edge.
  if (!ec && n < read_buf.size()) readable = false;
  return true;
}

bool edge_core::try_write(error_code& ec, size_t& n) {
  // A part only: the next attempt finds out whether the buffer is full (EAGAIN), which is what
  // makes the kernel raise the EPOLLOUT edge later.
  n = send(write_iov.data(), write_count, 0, ec);
  return ec != net::error::would_block;
}

void edge_core::on_events(uint32_t events) {
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) readable = true;
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) writable = true;
  // Syscalls first, handlers after: any handler may end the session and this core with it.
  wait_handler waited;
  io_handler read_done;
  io_handler write_done;
  error_code read_ec;
  error_code write_ec;
  size_t read_n = 0;
  size_t write_n = 0;
  if (readable && on_readable) waited = std::move(on_readable);
  if (readable && on_read && try_read(read_ec, read_n)) read_done = std::move(on_read);
  if (writable && on_write && try_write(write_ec, write_n)) write_done = std::move(on_write);
  if (waited) waited.invoke(error_code());
  if (read_done) read_done.invoke(read_ec, read_n);
  if (write_done) write_done.invoke(write_ec, write_n);
}

void edge_core::release_fd() {
  if (fd < 0) return;
  if (poller != nullptr) poller->forget(*this);
  ::close(fd);  // also leaves the epoll set (the fd is never duplicated)
  fd = -1;
}

void edge_core::close() {
  release_fd();
  // As Asio's close: what was pending completes with operation_aborted, through the executor.
  auto post_io = [this](io_handler& h) {
    if (!h) return;
    net::post(executor,
              [h = std::move(h)]() mutable { h.invoke(net::error::operation_aborted, 0); });
  };
  post_io(on_read);
  post_io(on_write);
  if (on_readable) {
    net::post(executor,
              [h = std::move(on_readable)]() mutable { h.invoke(net::error::operation_aborted); });
  }
}

// ---- edge_poller -------------------------------------------------------------------------------

edge_poller::~edge_poller() {
  stop();
  if (epfd_ >= 0) ::close(epfd_);
}

void edge_poller::start(net::io_context& io) {
  if (watcher_) return;
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
  // The descriptor object only watches: the fd stays ours (released before it is destroyed).
  watcher_.emplace(io, epfd_);
  arm();
}

void edge_poller::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (watcher_) {
    error_code ignored;
    watcher_->cancel(ignored);
    watcher_->release();
    watcher_.reset();
  }
  // The pending operations' handlers hold their sessions: drop them all (not run: the
  // io_context is not running), after collecting them, as dropping one may end other sessions.
  std::vector<edge_core::io_handler> io_handlers;
  std::vector<edge_core::wait_handler> wait_handlers;
  for (edge_core* c = live_; c != nullptr; c = c->next) {
    if (c->on_read) io_handlers.push_back(std::move(c->on_read));
    if (c->on_write) io_handlers.push_back(std::move(c->on_write));
    if (c->on_readable) wait_handlers.push_back(std::move(c->on_readable));
  }
  io_handlers.clear();
  wait_handlers.clear();
}

bool edge_poller::add(edge_core& core) {
  epoll_event ev{};
  // Registered once for the connection's life, never modified: edges say when it becomes
  // readable (EPOLLIN), writable again after EAGAIN (EPOLLOUT), or the peer closed (EPOLLRDHUP).
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &core;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, core.fd, &ev) != 0) return false;
  core.next = live_;
  if (live_ != nullptr) live_->prev = &core;
  live_ = &core;
  return true;
}

void edge_poller::forget(edge_core& core) {
  // Events fetched with this batch and not yet delivered must not reach a closed core.
  for (int i = cursor_ + 1; i < batch_size_; ++i) {
    if (batch_[i].data.ptr == &core) batch_[i].data.ptr = nullptr;
  }
  if (core.prev != nullptr) core.prev->next = core.next;
  if (core.next != nullptr) core.next->prev = core.prev;
  if (live_ == &core) live_ = core.next;
  core.prev = core.next = nullptr;
  core.poller = nullptr;
}

// One async_wait per wake-up: it costs an epoll_ctl on Asio's set each time, which the events
// of the whole batch share.
void edge_poller::arm() {
  watcher_->async_wait(net::posix::stream_descriptor::wait_read, [this](const error_code& ec) {
    if (ec || stopped_) return;
    on_ready();
    if (!stopped_ && watcher_) arm();
  });
}

void edge_poller::on_ready() {
  bump(wakeups_);
  // One batch: what is left re-raises the set's readiness, which re-arming reports at once.
  const int n = ::epoll_wait(epfd_, batch_.data(), static_cast<int>(batch_.size()), 0);
  batch_size_ = n > 0 ? n : 0;
  for (cursor_ = 0; cursor_ < batch_size_; ++cursor_) {
    auto* core = static_cast<edge_core*>(batch_[cursor_].data.ptr);
    if (core != nullptr) core->on_events(batch_[cursor_].events);
  }
  batch_size_ = 0;
  cursor_ = 0;
}

// ---- edge_socket -------------------------------------------------------------------------------

edge_socket::edge_socket(edge_poller& poller, int fd, executor_type executor)
    : core_(std::make_unique<edge_core>()) {
  core_->executor = std::move(executor);
  core_->fd = fd;
  const int flags = ::fcntl(fd, F_GETFL);
  if (fd < 0 || flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || poller.stopped_ ||
      poller.epfd_ < 0 || !poller.add(*core_)) {
    if (fd >= 0) ::close(fd);
    core_->fd = -1;
    return;
  }
  core_->poller = &poller;
}

edge_socket::~edge_socket() {
  if (!core_) return;  // moved from
  core_->release_fd();
  // Pending handlers would hold the session that owns this socket, so none is left here but
  // for a poller's stop(), which took them out already.
}

bool edge_socket::stopping() const {
  return core_->poller == nullptr || core_->poller->stopped_;
}

size_t edge_socket::send_iov(iovec* iov, int count, int flags, error_code& ec) {
  if (core_->fd < 0) {
    ec = net::error::bad_descriptor;
    return 0;
  }
  return core_->send(iov, count, flags, ec);
}

size_t edge_socket::receive(net::mutable_buffer buffer, int flags, error_code& ec) {
  if (core_->fd < 0) {
    ec = net::error::bad_descriptor;
    return 0;
  }
  return core_->recv(buffer, flags, ec);
}

void edge_socket::shutdown(tcp::socket::shutdown_type what, error_code& ec) {
  if (core_->fd < 0) {
    ec = net::error::bad_descriptor;
    return;
  }
  const int how = what == tcp::socket::shutdown_send      ? SHUT_WR
                  : what == tcp::socket::shutdown_receive ? SHUT_RD
                                                          : SHUT_RDWR;
  ec = ::shutdown(core_->fd, how) == 0 ? error_code() : errno_code(errno);
}

void edge_socket::close(error_code& ec) {
  ec = {};
  core_->close();
}

edge_socket::tcp::endpoint edge_socket::remote_endpoint(error_code& ec) const {
  tcp::endpoint ep;
  socklen_t len = static_cast<socklen_t>(ep.capacity());
  if (core_->fd < 0) {
    ec = net::error::bad_descriptor;
    return ep;
  }
  if (::getpeername(core_->fd, ep.data(), &len) != 0) {
    ec = errno_code(errno);
    return {};
  }
  ep.resize(len);
  ec = {};
  return ep;
}

}  // namespace moat::http
