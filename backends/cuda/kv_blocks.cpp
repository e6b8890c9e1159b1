#include "kv_blocks.h"

#include <algorithm>
#include <stdexcept>

namespace moat::cuda {

namespace {
const std::vector<int32_t> k_empty;

std::vector<int32_t> all_blocks(int32_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) v[i] = n - 1 - i;  // a stack: block 0 is handed out first
  return v;
}
}  // namespace

kv_block_manager::kv_block_manager(int32_t device_blocks, int32_t host_blocks, int32_t block_size)
    : block_size_(block_size), free_device_(all_blocks(device_blocks)), free_host_(all_blocks(host_blocks)) {
  if (device_blocks < 0 || host_blocks < 0 || block_size <= 0)
    throw std::invalid_argument("kv_block_manager: negative pool or non-positive block size");
}

std::optional<std::vector<int32_t>> kv_block_manager::take(std::vector<int32_t>& pool, size_t n) {
  if (pool.size() < n) return std::nullopt;
  std::vector<int32_t> out(pool.end() - static_cast<std::ptrdiff_t>(n), pool.end());
  pool.resize(pool.size() - n);
  return out;
}

bool kv_block_manager::reserve(uint64_t seq, int32_t n_positions) {
  if (n_positions < 0) return false;
  auto it = seqs_.find(seq);
  if (it != seqs_.end() && it->second.on_host) return false;
  const size_t have = it == seqs_.end() ? 0 : it->second.blocks.size();
  const size_t need = (static_cast<size_t>(n_positions) + block_size_ - 1) / block_size_;
  if (need > have) {
    auto got = take(free_device_, need - have);
    if (!got) return false;
    if (it == seqs_.end()) it = seqs_.emplace(seq, entry{next_order_++, false, {}}).first;
    it->second.blocks.insert(it->second.blocks.end(), got->begin(), got->end());
  } else if (it == seqs_.end()) {
    seqs_.emplace(seq, entry{next_order_++, false, {}});
  }
  return true;
}

void kv_block_manager::release(uint64_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  auto& pool = it->second.on_host ? free_host_ : free_device_;
  pool.insert(pool.end(), it->second.blocks.begin(), it->second.blocks.end());
  seqs_.erase(it);
}

std::optional<std::vector<block_copy>> kv_block_manager::swap_out(uint64_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end() || it->second.on_host) return std::nullopt;
  auto host = take(free_host_, it->second.blocks.size());
  if (!host) return std::nullopt;
  std::vector<block_copy> copies;
  for (size_t i = 0; i < host->size(); ++i) copies.push_back({it->second.blocks[i], (*host)[i]});
  free_device_.insert(free_device_.end(), it->second.blocks.begin(), it->second.blocks.end());
  it->second.blocks = std::move(*host);
  it->second.on_host = true;
  return copies;
}

std::optional<std::vector<block_copy>> kv_block_manager::swap_in(uint64_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end() || !it->second.on_host) return std::nullopt;
  auto dev = take(free_device_, it->second.blocks.size());
  if (!dev) return std::nullopt;
  std::vector<block_copy> copies;
  for (size_t i = 0; i < dev->size(); ++i) copies.push_back({it->second.blocks[i], (*dev)[i]});
  free_host_.insert(free_host_.end(), it->second.blocks.begin(), it->second.blocks.end());
  it->second.blocks = std::move(*dev);
  it->second.on_host = false;
  return copies;
}

std::optional<uint64_t> kv_block_manager::pick_victim(uint64_t except) const {
  std::optional<uint64_t> best;
  uint64_t best_order = 0;
  for (const auto& [id, e] : seqs_)
    if (id != except && !e.on_host && !e.blocks.empty() && (!best || e.order > best_order)) {
      best = id;
      best_order = e.order;
    }
  return best;
}

bool kv_block_manager::resident(uint64_t seq) const {
  auto it = seqs_.find(seq);
  return it != seqs_.end() && !it->second.on_host;
}

bool kv_block_manager::swapped(uint64_t seq) const {
  auto it = seqs_.find(seq);
  return it != seqs_.end() && it->second.on_host;
}

const std::vector<int32_t>& kv_block_manager::table(uint64_t seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() || it->second.on_host ? k_empty : it->second.blocks;
}

std::vector<copy_run> coalesce_copies(std::vector<block_copy> copies) {
  std::sort(copies.begin(), copies.end(), [](const block_copy& a, const block_copy& b) { return a.from < b.from; });
  std::vector<copy_run> runs;
  for (const auto& c : copies) {
    if (!runs.empty()) {
      copy_run& last = runs.back();
      if (c.from == last.from + last.count && c.to == last.to + last.count) {
        ++last.count;
        continue;
      }
    }
    runs.push_back({c.from, c.to, 1});
  }
  return runs;
}

std::vector<copy_run> swap_runs(std::span<const engine::block_move> moves, bool to_host) {
  std::vector<block_copy> copies;
  copies.reserve(moves.size());
  for (const auto& m : moves) copies.push_back(to_host ? block_copy{m.device, m.host} : block_copy{m.host, m.device});
  return coalesce_copies(std::move(copies));
}

int32_t host_kv_blocks_for(int64_t mb, int32_t n_layers, size_t block_bytes) {
  if (mb <= 0 || n_layers <= 0 || block_bytes == 0) return 0;
  const size_t per_block = static_cast<size_t>(n_layers) * 2 * block_bytes;
  const size_t n = (static_cast<size_t>(mb) << 20) / per_block;
  return static_cast<int32_t>(std::min<size_t>(n, INT32_MAX));
}

}  // namespace moat::cuda
