#include "api/cache_salt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <simdjson.h>

#include <random>
#include <stdexcept>

#include "api/common.h"
#include "host/request_builder.h"

namespace moat::api {

std::string make_cache_salt_secret() {
  std::string secret(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(secret.size())) != 1) {
    // OpenSSL's generator failing is exotic; fall back to the OS's, never to a constant.
    std::random_device rd;
    for (auto& c : secret) c = static_cast<char>(rd());
  }
  return secret;
}

std::string derive_cache_salt(std::string_view secret, std::string_view key_name, std::string_view client_salt) {
  std::string message = "moat-cache-salt";
  message.push_back('\0');
  message.append(key_name);
  message.push_back('\0');
  message.append(client_salt);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_len) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(mac_len * 2);
  for (unsigned int i = 0; i < mac_len; ++i) {
    out.push_back(hex[mac[i] >> 4]);
    out.push_back(hex[mac[i] & 15]);
  }
  return out;
}

std::optional<openai::api_error> apply_cache_salt(const api_context& ctx, const http::request& req, std::string& body) {
  std::string client_salt;
  // Most requests carry none: skip the parse unless the name appears at all.
  if (body.find("\"cache_salt\"") != std::string::npos) {
    simdjson::dom::parser parser;
    simdjson::dom::object root;
    simdjson::dom::element value;
    if (parser.parse(simdjson::padded_string(body)).get(root) == simdjson::SUCCESS &&
        root["cache_salt"].get(value) == simdjson::SUCCESS && !value.is_null()) {  // null: not given
      std::string_view text;
      if (value.get_string().get(text) != simdjson::SUCCESS || text.empty()) {
        return openai::invalid_request("'cache_salt' must be a non-empty string", "cache_salt");
      }
      client_salt = text;
    }
  }
  const caller* who = caller_of(req);
  if (who == nullptr) return std::nullopt;  // no keys: the client's salt, if any, as sent
  body = host::with_string_field(body, "cache_salt", derive_cache_salt(ctx.cache_salt_secret, who->key_name, client_salt));
  return std::nullopt;
}

}  // namespace moat::api
