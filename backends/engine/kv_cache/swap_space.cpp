#include "engine/kv_cache/swap_space.h"

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>

namespace moat::engine::kv_cache {

swap_space::swap_space(int32_t n_blocks)
    : taken_(static_cast<size_t>(std::max(0, n_blocks)), false) {
  for (int32_t b = std::max(0, n_blocks); b-- > 0;) free_.push_back(b);
}

std::optional<std::vector<int32_t>> swap_space::take(int32_t n) {
  if (n < 0 || n > available()) return std::nullopt;
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    out.push_back(free_.back());
    free_.pop_back();
    taken_[static_cast<size_t>(out.back())] = true;
  }
  return out;
}

void swap_space::give_back(std::span<const int32_t> blocks) {
  for (int32_t b : blocks) {
    if (b < 0 || b >= total() || !taken_[static_cast<size_t>(b)])
      throw std::logic_error("swap_space: block " + std::to_string(b) + " was not taken");
    taken_[static_cast<size_t>(b)] = false;
    free_.push_back(b);
  }
  // Lowest ids on top again, so the next take() hands out runs.
  std::sort(free_.begin(), free_.end(), std::greater<>());
}

}  // namespace moat::engine::kv_cache
