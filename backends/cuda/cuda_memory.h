// Device memory and error handling for the cuda backend: an owning buffer and `check`, which
// turns a cudaError_t into engine::model_error. Internal to backends/cuda.
//
//   device_buffer<float> x(n);                  // cudaMalloc, freed by the destructor
//   check(cudaMemcpy(x.get(), h, n * 4, cudaMemcpyHostToDevice), "upload x");
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string_view>
#include <utility>

#include "engine/model_error.h"

namespace moat::cuda {

// Throws engine::model_error "cuda: <what>: <error string>" unless e is cudaSuccess.
void check(cudaError_t e, std::string_view what);

template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(size_t n) { resize(n); }
  ~device_buffer() { release(); }
  device_buffer(device_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;

  // Reallocates (contents lost) when n exceeds the capacity.
  void resize(size_t n) {
    if (n <= n_) return;
    release();
    void* p = nullptr;
    check(cudaMalloc(&p, n * sizeof(T)), "cudaMalloc");
    p_ = static_cast<T*>(p);
    n_ = n;
  }
  void upload(const T* host, size_t n, cudaStream_t s) {
    resize(n);
    check(cudaMemcpyAsync(p_, host, n * sizeof(T), cudaMemcpyHostToDevice, s), "upload");
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  void release() {
    if (p_ != nullptr) cudaFree(p_);  // an error here cannot be acted on: the memory is gone either way
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace moat::cuda
