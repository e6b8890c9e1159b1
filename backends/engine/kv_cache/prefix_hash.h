// prefix_hash: the chained content hash that names a full KV block for prefix caching (vLLM's
// automatic prefix caching).
//
//   uint64_t h = prefix_root(request.cache_salt);          // the salt starts every chain
//   for (each full block of the prompt) h = block_hash(h, block_tokens);
//
// A block's hash covers its own token ids and, through its parent's hash, every token before it
// and the salt, so two blocks with equal hashes hold the K/V of equal prefixes. Requests with
// different salts (the gateway fills cache_salt per API key) never produce equal chains, so one
// tenant cannot find out through timing whether another sent a prompt. The hash is 64-bit
// (splitmix64-style mixing per token); block_pool also keeps each cached block's tokens and
// parent hash and compares them on every hit, so a hash collision costs a miss, never a wrong
// answer.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace moat::engine::kv_cache {

// The parent hash of a chain's first block: a function of the salt alone ("" is a salt too).
uint64_t prefix_root(std::string_view salt);

// The hash of a full block whose tokens are `tokens`, following the block hashed `parent`.
uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens);

}  // namespace moat::engine::kv_cache
