// ASCII-only text helpers shared by the config loader, the HTTP layer and the edge checks. Header
// names, units and tokens like "chunked" are ASCII by their grammars, so no locale is consulted
// (std::tolower would, and is slower for it).
//
//   if (moat::util::iequals(name, "content-length")) ...
#pragma once

#include <cstddef>
#include <string_view>

namespace moat::util {

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Case-insensitive equality over ASCII letters; every other byte compares exactly.
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

}  // namespace moat::util
