// cuda_graph_stream: graph_stream (graph_cache.h) on a real CUDA stream. Capture mode is
// thread-local (cudaStreamCaptureModeThreadLocal): each tensor-parallel rank captures on its
// own thread without tripping over the others' unrelated CUDA calls.
//
//   cuda_graph_stream gs(stream);                  // does not own the stream
//   graph_cache cache(gs, graph_buckets::defaults(max_batch), opts.cuda_graphs);
#pragma once

#include <cuda_runtime_api.h>

#include <map>

#include "graph_cache.h"

namespace moat::cuda {

class cuda_graph_stream final : public graph_stream {
 public:
  explicit cuda_graph_stream(cudaStream_t stream) : stream_(stream) {}
  ~cuda_graph_stream() override;

  void begin_capture() override;
  graph_id end_capture() override;
  void abort_capture() noexcept override;
  void launch(graph_id g) override;
  void destroy(graph_id g) noexcept override;

 private:
  cudaStream_t stream_;
  graph_id next_ = 1;
  std::map<graph_id, cudaGraphExec_t> execs_;  // owned; destroyed by destroy() or the destructor
};

}  // namespace moat::cuda
