#include "engine/kv_cache/prefix_hash.h"

namespace moat::engine::kv_cache {

namespace {

// splitmix64's finalizer: every input bit affects every output bit.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t prefix_root(std::string_view salt) {
  uint64_t h = mix(0x6d6f61742d6b7631ull ^ salt.size());  // "moat-kv1", then the length
  for (unsigned char c : salt) h = mix(h ^ c);
  return h;
}

uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix(parent ^ (0x5bd1e995ull * (tokens.size() + 1)));
  for (int32_t t : tokens) h = mix(h ^ static_cast<uint32_t>(t));
  return h;
}

}  // namespace moat::engine::kv_cache
