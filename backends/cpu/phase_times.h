// phase_times: where a forward step's time goes, per phase of the batched pass (off by default).
// Enabled by MOAT_CPU_PHASES=1 in the environment or by phase_times::enable(true) (the engine
// bench's --phases); when off, a phase_scope costs one relaxed load.
//
//   moat::cpu::phase_times::enable(true);
//   moat::cpu::phase_times::reset();
//   runner->forward(items, logits);                       // batched_forward records its phases
//   auto s = moat::cpu::phase_times::seconds();           // [phase_count] seconds since reset()
//
// Only the thread that calls forward() records (a phase's time is the wall time of the whole
// parallel region, workers included), so the counters need no locking beyond atomics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace moat::cpu {

enum class phase : int {
  embed,      // token rows of the embedding, to f32
  norm,       // RMSNorm before attention, before the MLP, and the final one
  act_quant,  // activations to Q8_0 (once per distinct input of a step's matmuls)
  qkv,        // the q, k and v projections (one parallel region)
  rope_kv,    // RoPE on q and k, K/V rows into the paged cache
  attention,  // scores, softmax and the weighted V sum over the paged cache
  wo,         // the output projection and its residual add
  gate_up,    // the gate and up projections and SiLU(gate) * up (one parallel region)
  down,       // the down projection and its residual add
  lm_head,    // the vocabulary projection (final norm counted under norm)
  count
};
constexpr int phase_count = static_cast<int>(phase::count);

namespace phase_times {
bool enabled();
void enable(bool on);
void reset();
std::array<double, phase_count> seconds();
const char* name(phase p);
void add(phase p, int64_t ns);
// The thread pool's side (inside the phases above, not beside them): parallel regions that woke
// the workers, and the time the caller spent waiting for them after its own chunks (imbalance,
// wake-up and scheduling delays).
void add_region(int64_t caller_wait_ns);
int64_t regions();
double caller_wait_seconds();
}  // namespace phase_times

// Adds the scope's wall time to phase p when phase_times are enabled. Scopes nest: an inner
// scope's time (activation quantization inside a matmul phase) counts for the inner phase only.
class phase_scope {
 public:
  explicit phase_scope(phase p) : p_(p), on_(phase_times::enabled()) {
    if (!on_) return;
    parent_ = current_;
    current_ = this;
    t0_ = std::chrono::steady_clock::now();
  }
  ~phase_scope() {
    if (!on_) return;
    const int64_t d =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_)
            .count();
    phase_times::add(p_, d - inner_ns_);
    if (parent_ != nullptr) parent_->inner_ns_ += d;
    current_ = parent_;
  }
  phase_scope(const phase_scope&) = delete;
  phase_scope& operator=(const phase_scope&) = delete;

 private:
  static inline thread_local phase_scope* current_ = nullptr;
  phase p_;
  bool on_;
  phase_scope* parent_ = nullptr;
  int64_t inner_ns_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace moat::cpu
