// Whether the calling thread is running a connection's executor now: the io_context's own (one
// I/O thread) or a strand on it (several). Lets an answer or a drain that already runs where it
// belongs go on inline instead of through dispatch() on the type-erased executor, which wraps a
// handler for it. Any other executor type counts as "not here", which only costs the dispatch.
//
//   if (moat::util::running_here(strand)) deliver(); else net::post(strand, deliver);
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

namespace moat::util {

inline bool running_here(const boost::asio::any_io_executor& ex) {
  using io_executor = boost::asio::io_context::executor_type;
  if (const auto* io = ex.target<io_executor>()) return io->running_in_this_thread();
  if (const auto* strand = ex.target<boost::asio::strand<io_executor>>()) return strand->running_in_this_thread();
  return false;
}

}  // namespace moat::util
