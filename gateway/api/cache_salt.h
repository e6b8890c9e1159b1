// Prefix-cache isolation between tenants. A backend with a prefix cache (vLLM, and ours) answers
// a prompt that shares a cached prefix measurably faster, so one tenant could probe for another's
// prompts by timing. vLLM keys its cache with the request's `cache_salt` as well: the gateway sets
// that field, in the body the backend receives, to a value derived from the caller's API key, so
// two keys never share cache entries while requests of one key still do.
//
//   // after the request policies, before submit():
//   if (auto err = moat::api::apply_cache_salt(ctx, req, body)) return respond(error_response(...));
//
// Without API keys the client's own `cache_salt` passes through unchanged (docs/security.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "api/api.h"
#include "openai/protocol.h"

namespace moat::api {

// 32 random bytes (OpenSSL's generator): the per-process secret salts are derived with.
std::string make_cache_salt_secret();

// hex(HMAC-SHA256(secret, "moat-cache-salt" 0 key_name 0 client_salt)): 64 hex digits. Equal for
// equal inputs, unrelated across key names, and not computable without the secret, so a client
// cannot pick another key's salt by sending it.
std::string derive_cache_salt(std::string_view secret, std::string_view key_name, std::string_view client_salt);

// Rewrites `body` (the JSON the backend will receive) for the caller: with an API key, its
// `cache_salt` becomes derive_cache_salt(secret, key name, the client's cache_salt or ""); without
// one it is left as sent. A client cache_salt that is neither null nor a non-empty string is a
// 400 naming `cache_salt` (as vLLM answers).
std::optional<openai::api_error> apply_cache_salt(const api_context& ctx, const http::request& req, std::string& body);

}  // namespace moat::api
