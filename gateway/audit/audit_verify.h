// Checks an audit chain: `moat audit verify FILE...` and the tests.
//
//   auto r = moat::audit::verify_files({"audit.jsonl.000001", "audit.jsonl"});
//   if (!r.ok) std::cerr << r.message << "\n";    // "audit.jsonl:12: ..."
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moat::audit {

struct verify_result {
  bool ok = false;
  uint64_t lines = 0;      // lines checked
  std::string file;        // the first bad line's file, when !ok
  uint64_t line = 0;       // its 1-based line number in that file
  std::string message;     // "FILE:LINE: what is wrong", or a summary when ok
};

// Verifies the files in order as one chain. `partial` accepts a chain that starts after seq 0
// (earlier rotated files deleted on purpose); otherwise the first line must be seq 0.
verify_result verify_files(const std::vector<std::string>& files, bool partial = false);

// The rotated siblings of `path` (path.000001, ...) in order, then `path` itself if it exists.
std::vector<std::string> chain_files(const std::string& path);

}  // namespace moat::audit
