// graph_cache: CUDA-graph capture and replay of decode steps, as bookkeeping over an abstract
// "stream" (graph_stream), so the rules are tested on the CPU with a fake and the real one
// (cuda_graphs.h) is a thin layer of cudaStreamBeginCapture / cudaGraphLaunch.
//
// A decode step for n sequences runs as the graph captured for (bucket(n), layout): n is padded
// up to its bucket (graph_keys.h; padded rows are empty sequences), and `layout` is whatever
// the captured kernels bake in besides the batch size: the block-table width (max blocks per
// sequence) and an epoch bumped whenever a device buffer the step reads or writes is
// reallocated. A graph is captured the first time its key is used and replayed afterwards; a
// new layout destroys every graph (their pointers and shapes are stale, replaying one would
// read freed memory). A batch larger than every bucket, a disabled cache, or a key whose
// capture failed once run eagerly.
//
//   graph_cache cache(stream, graph_buckets::defaults(256), /*enabled=*/true);
//   cache.set_layout({.table_width = 64, .epoch = buffers_epoch});
//   auto how = cache.run(n_running, [&](int32_t rows) { enqueue_decode_kernels(rows); });
//   // how == step_mode::captured (first time), replayed, or eager
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "graph_keys.h"

namespace moat::cuda {

// What graph_cache needs from a stream. Every function throws (engine::model_error in the CUDA
// implementation) on failure.
class graph_stream {
 public:
  using graph_id = uint64_t;  // an instantiated graph (cudaGraphExec_t), 0 = none
  virtual ~graph_stream() = default;
  virtual void begin_capture() = 0;
  // Ends the capture and instantiates what was recorded.
  virtual graph_id end_capture() = 0;
  // Ends a capture whose recording failed, discarding it (the stream must be usable after).
  virtual void abort_capture() noexcept = 0;
  virtual void launch(graph_id g) = 0;
  virtual void destroy(graph_id g) noexcept = 0;
};

struct graph_layout {
  int32_t table_width = 0;  // block-table columns the attention kernel is launched with
  uint64_t epoch = 0;       // bumped by the runner when a buffer the step uses moves
  bool operator==(const graph_layout&) const = default;
};

enum class step_mode { eager, captured, replayed };

struct graph_stats {
  int64_t captures = 0, replays = 0, eager = 0, failures = 0, invalidations = 0;
};

class graph_cache {
 public:
  // record(rows) enqueues one decode step for `rows` rows (padded rows included) on the stream.
  using record_fn = std::function<void(int32_t rows)>;

  graph_cache(graph_stream& stream, graph_buckets buckets, bool enabled);
  ~graph_cache();  // destroys every graph
  graph_cache(const graph_cache&) = delete;
  graph_cache& operator=(const graph_cache&) = delete;

  // Declares the layout of the coming steps; a change destroys every graph.
  void set_layout(const graph_layout& layout);

  // Runs one decode step for n > 0 sequences. Eagerly: record(n). From a graph: capture
  // record(bucket) once, then launch. A capture that throws is aborted, the key is marked
  // eager-only (failure_reason() says why) and the step runs eagerly; an exception from an
  // eager record(), or from launch(), propagates.
  step_mode run(int32_t n, const record_fn& record);

  // The padded row count a step of n sequences is launched with (n when it runs eagerly).
  int32_t rows_for(int32_t n) const;

  size_t graphs() const { return graphs_.size(); }
  const graph_stats& stats() const { return stats_; }
  const std::string& failure_reason() const { return failure_; }

 private:
  void clear() noexcept;

  graph_stream& stream_;
  graph_buckets buckets_;
  bool enabled_;
  graph_layout layout_;
  std::map<int32_t, graph_stream::graph_id> graphs_;  // bucket -> graph, for layout_
  std::map<int32_t, bool> eager_only_;                // buckets whose capture failed
  graph_stats stats_;
  std::string failure_;
};

}  // namespace moat::cuda
