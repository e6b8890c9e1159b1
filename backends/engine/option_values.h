// Reading numbers out of a plugin's `options:` map (simdjson), with the messages the plugins
// share: "options.KEY: expected an integer", "options.KEY: V is outside LO..HI".
//
//   const int64_t mb = moat::engine::option_int(value, "kv_cache_mb", 1, 1 << 24);
#pragma once

#include <fmt/format.h>
#include <simdjson.h>

#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace moat::engine {

// An integer (a whole-valued double such as 8.0 counts) within [lo, hi]; throws
// std::invalid_argument naming the key otherwise.
inline int64_t option_int(simdjson::dom::element v, std::string_view key, int64_t lo, int64_t hi) {
  int64_t x = 0;
  double d = 0;
  if (v.get_int64().get(x) != simdjson::SUCCESS) {
    if (v.get_double().get(d) != simdjson::SUCCESS || d != static_cast<double>(static_cast<int64_t>(d)))
      throw std::invalid_argument(fmt::format("options.{}: expected an integer", key));
    x = static_cast<int64_t>(d);
  }
  if (x < lo || x > hi) throw std::invalid_argument(fmt::format("options.{}: {} is outside {}..{}", key, x, lo, hi));
  return x;
}

}  // namespace moat::engine
