#include "graph_cache.h"

#include <exception>

namespace moat::cuda {

graph_cache::graph_cache(graph_stream& stream, graph_buckets buckets, bool enabled)
    : stream_(stream), buckets_(std::move(buckets)), enabled_(enabled) {}

graph_cache::~graph_cache() { clear(); }

void graph_cache::clear() noexcept {
  for (const auto& [bucket, g] : graphs_) stream_.destroy(g);
  graphs_.clear();
}

void graph_cache::set_layout(const graph_layout& layout) {
  if (layout == layout_) return;
  if (!graphs_.empty()) ++stats_.invalidations;
  clear();
  // A capture that failed under the old layout may work under the new one (and the reverse).
  eager_only_.clear();
  layout_ = layout;
}

int32_t graph_cache::rows_for(int32_t n) const {
  if (!enabled_) return n;
  const int32_t bucket = buckets_.bucket_for(n);
  if (bucket < 0 || eager_only_.count(bucket)) return n;
  return bucket;
}

step_mode graph_cache::run(int32_t n, const record_fn& record) {
  const int32_t bucket = enabled_ ? buckets_.bucket_for(n) : -1;
  if (bucket < 0 || eager_only_.count(bucket)) {
    record(n);
    ++stats_.eager;
    return step_mode::eager;
  }
  if (auto it = graphs_.find(bucket); it != graphs_.end()) {
    stream_.launch(it->second);
    ++stats_.replays;
    return step_mode::replayed;
  }
  graph_stream::graph_id g = 0;
  try {
    stream_.begin_capture();
    try {
      record(bucket);
    } catch (...) {
      stream_.abort_capture();
      throw;
    }
    g = stream_.end_capture();
  } catch (const std::exception& e) {
    // Something in the step cannot be captured (or capture is unsupported here): this bucket
    // runs eagerly from now on; the step itself is not lost.
    ++stats_.failures;
    eager_only_[bucket] = true;
    failure_ = e.what();
    record(n);
    ++stats_.eager;
    return step_mode::eager;
  }
  graphs_[bucket] = g;
  ++stats_.captures;
  // Capturing records the work without running it: launch the new graph for this step.
  stream_.launch(g);
  return step_mode::captured;
}

}  // namespace moat::cuda
