#include "graph_keys.h"

#include <algorithm>

namespace moat::cuda {

graph_buckets graph_buckets::defaults(int32_t max_batch) {
  graph_buckets b;
  if (max_batch <= 0) return b;
  for (int32_t s = 1; s <= max_batch;) {
    b.sizes.push_back(s);
    s = s < 8 ? s * 2 : s < 32 ? s + 8 : s < 64 ? s + 16 : s < 256 ? s + 32 : s + 64;
  }
  if (b.sizes.back() != max_batch) b.sizes.push_back(max_batch);
  return b;
}

int32_t graph_buckets::bucket_for(int32_t n) const {
  if (n <= 0) return -1;
  auto it = std::lower_bound(sizes.begin(), sizes.end(), n);
  return it == sizes.end() ? -1 : *it;
}

}  // namespace moat::cuda
