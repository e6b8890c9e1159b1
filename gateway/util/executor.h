// Whether the calling thread is running a connection's executor now: the io_context's own (one
// I/O thread) or a strand on it (several). Lets an answer or a drain that already runs where it
// belongs go on inline instead of through dispatch() on the type-erased executor, which wraps a
// handler for it. Any other executor type counts as "not here", which only costs the dispatch.
//
//   if (moat::util::running_here(strand)) deliver(); else net::post(strand, deliver);
//   moat::util::post_direct(strand, [] { ... });
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <typeinfo>
#include <utility>

namespace moat::util {

// The executor `ex` holds when it is an `Executor`, else nullptr. Boost 1.74's
// any_executor::target<T>() casts without looking at the type: asked for the io_context's
// executor while holding a strand, it hands back the strand's inner executor, and then any
// I/O thread passed for "on this strand" (with two I/O threads, a connection's handlers and
// its backend's drain raced). The type is checked here first.
template <class Executor>
const Executor* target_of(const boost::asio::any_io_executor& ex) {
  if (!ex || ex.target_type() != typeid(Executor)) return nullptr;
  return ex.target<Executor>();
}

inline bool running_here(const boost::asio::any_io_executor& ex) {
  using io_executor = boost::asio::io_context::executor_type;
  if (const auto* io = target_of<io_executor>(ex)) return io->running_in_this_thread();
  if (const auto* strand = target_of<boost::asio::strand<io_executor>>(ex))
    return strand->running_in_this_thread();
  return false;
}

// net::post on the executor the type-erased one holds (the io_context's, or a strand on it):
// posting through any_io_executor first wraps the handler for it (a prefer and an allocation)
// before the io_context wraps it again.
template <class Handler>
void post_direct(const boost::asio::any_io_executor& ex, Handler&& handler) {
  using io_executor = boost::asio::io_context::executor_type;
  if (const auto* io = target_of<io_executor>(ex))
    return boost::asio::post(*io, std::forward<Handler>(handler));
  if (const auto* strand = target_of<boost::asio::strand<io_executor>>(ex))
    return boost::asio::post(*strand, std::forward<Handler>(handler));
  boost::asio::post(ex, std::forward<Handler>(handler));
}

}  // namespace moat::util
