#include "cpu/phase_times.h"

#include <cstdlib>
#include <cstring>

namespace moat::cpu::phase_times {

namespace {
bool from_env() {
  const char* v = std::getenv("MOAT_CPU_PHASES");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}
std::atomic<bool> on{from_env()};
std::array<std::atomic<int64_t>, phase_count> ns{};
std::atomic<int64_t> region_count{0}, wait_ns{0};
}  // namespace

bool enabled() {
  return on.load(std::memory_order_relaxed);
}
void enable(bool v) {
  on.store(v, std::memory_order_relaxed);
}

void reset() {
  for (auto& a : ns) a.store(0, std::memory_order_relaxed);
  region_count.store(0, std::memory_order_relaxed);
  wait_ns.store(0, std::memory_order_relaxed);
}

void add_region(int64_t caller_wait_ns) {
  region_count.fetch_add(1, std::memory_order_relaxed);
  wait_ns.fetch_add(caller_wait_ns, std::memory_order_relaxed);
}
int64_t regions() {
  return region_count.load();
}
double caller_wait_seconds() {
  return static_cast<double>(wait_ns.load()) * 1e-9;
}

void add(phase p, int64_t d) {
  ns[static_cast<size_t>(p)].fetch_add(d, std::memory_order_relaxed);
}

std::array<double, phase_count> seconds() {
  std::array<double, phase_count> out{};
  for (int i = 0; i < phase_count; ++i)
    out[static_cast<size_t>(i)] = static_cast<double>(ns[static_cast<size_t>(i)].load()) * 1e-9;
  return out;
}

const char* name(phase p) {
  switch (p) {
    case phase::embed:
      return "embed";
    case phase::norm:
      return "rmsnorm";
    case phase::act_quant:
      return "activation quant";
    case phase::qkv:
      return "q/k/v matmul";
    case phase::rope_kv:
      return "rope + kv write";
    case phase::attention:
      return "attention";
    case phase::wo:
      return "o matmul + residual";
    case phase::gate_up:
      return "gate/up matmul + silu";
    case phase::down:
      return "down matmul + residual";
    case phase::lm_head:
      return "lm_head";
    case phase::count:
      break;
  }
  return "?";
}

}  // namespace moat::cpu::phase_times
