// API key material: generation, hashing, constant-time comparison. Keys are only ever stored
// as their SHA-256; the key itself exists in the client's hands and in one request at a time.
//
//   std::string key = moat::auth::generate_api_key();          // "sk-moat-" + 43 base62 chars
//   moat::auth::key_digest d = moat::auth::digest_of(key);      // SHA-256
//   std::string line = moat::auth::to_hex(d);                   // for the config's sha256:
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::auth {

using key_digest = std::array<std::uint8_t, 32>;

inline constexpr std::string_view key_prefix = "sk-moat-";

// 43 base62 characters carry 256 bits; rejection sampling keeps every character uniform.
std::string generate_api_key();
key_digest digest_of(std::string_view key);
std::string to_hex(const key_digest& d);
// 64 hex digits (either case) -> digest; nullopt for anything else.
std::optional<key_digest> digest_from_hex(std::string_view hex);
// CRYPTO_memcmp: the time taken does not depend on where the digests differ.
bool digests_equal(const key_digest& a, const key_digest& b);

// The key in an `Authorization: Bearer <key>` value (scheme case-insensitive); empty if none.
std::string_view bearer_token(std::string_view authorization);

}  // namespace moat::auth
