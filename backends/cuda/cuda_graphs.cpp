#include "cuda_graphs.h"

#include <string>

#include "cuda_memory.h"

namespace moat::cuda {

cuda_graph_stream::~cuda_graph_stream() {
  for (const auto& [id, exec] : execs_) cudaGraphExecDestroy(exec);
}

void cuda_graph_stream::begin_capture() {
  check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
}

cuda_graph_stream::graph_id cuda_graph_stream::end_capture() {
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  // The executable graph keeps what it needs; the template is not used again.
  cudaGraphDestroy(graph);
  check(e, "cudaGraphInstantiate");
  const graph_id id = next_++;
  execs_[id] = exec;
  return id;
}

void cuda_graph_stream::abort_capture() noexcept {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream_, &status) != cudaSuccess || status == cudaStreamCaptureStatusNone) return;
  cudaGraph_t graph = nullptr;
  // Ends the (possibly invalidated) capture so the stream takes ordinary work again.
  if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph != nullptr) cudaGraphDestroy(graph);
  cudaGetLastError();  // clear the sticky-free error the failed capture left
}

void cuda_graph_stream::launch(graph_id g) {
  const auto it = execs_.find(g);
  if (it == execs_.end()) check(cudaErrorInvalidValue, "cudaGraphLaunch of an unknown graph " + std::to_string(g));
  check(cudaGraphLaunch(it->second, stream_), "cudaGraphLaunch");
}

void cuda_graph_stream::destroy(graph_id g) noexcept {
  const auto it = execs_.find(g);
  if (it == execs_.end()) return;
  cudaGraphExecDestroy(it->second);
  execs_.erase(it);
}

}  // namespace moat::cuda
