#include "http/deadlines.h"

namespace moat::http {

void deadline_sweeper::start(boost::asio::io_context& io) {
  {
    std::lock_guard lock(mutex_);
    stopped_ = false;
  }
  timer_.emplace(io);
  arm();
}

void deadline_sweeper::stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
}

void deadline_sweeper::arm() {
  timer_->expires_after(tick_);
  timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    sweep();
  });
}

void deadline_sweeper::add(timed_connection& c) {
  std::lock_guard lock(mutex_);
  c.prev_ = nullptr;
  c.next_ = head_;
  if (head_ != nullptr) head_->prev_ = &c;
  head_ = &c;
  ++count_;
}

void deadline_sweeper::remove(timed_connection& c) {
  std::lock_guard lock(mutex_);
  if (c.prev_ != nullptr) {
    c.prev_->next_ = c.next_;
  } else if (head_ == &c) {
    head_ = c.next_;
  } else {
    return;  // not in the list
  }
  if (c.next_ != nullptr) c.next_->prev_ = c.prev_;
  c.prev_ = c.next_ = nullptr;
  --count_;
}

size_t deadline_sweeper::size() const {
  std::lock_guard lock(mutex_);
  return count_;
}

void deadline_sweeper::sweep() {
  const auto now = timed_connection::clock::now();
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    for (timed_connection* c = head_; c != nullptr; c = c->next_) {
      // The connection checks again on its strand and clears the deadline when it cuts; until
      // then a later sweep may post once more, which is harmless.
      if (c->overdue(now)) c->expire();
    }
  }
  arm();
}

}  // namespace moat::http
