#include "audit/audit_verify.h"

#include <simdjson.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "audit/audit_log.h"

namespace moat::audit {

namespace {

bool is_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

std::vector<std::string> chain_files(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<std::string> rotated;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string base = p.filename().string();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() == base.size() + 7 && name.compare(0, base.size(), base) == 0 && name[base.size()] == '.' &&
        std::all_of(name.begin() + static_cast<long>(base.size()) + 1, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      rotated.push_back(e.path().string());
  }
  std::sort(rotated.begin(), rotated.end());
  if (fs::exists(p)) rotated.push_back(path);
  return rotated;
}

verify_result verify_files(const std::vector<std::string>& files, bool partial) {
  verify_result r;
  simdjson::dom::parser parser;
  std::string prev_line;  // the previous line's full text
  bool first = true;
  uint64_t last_seq = 0;
  auto bad = [&](const std::string& file, uint64_t line, const std::string& what) {
    r.ok = false;
    r.file = file;
    r.line = line;
    r.message = file + ":" + std::to_string(line) + ": " + what;
    return r;
  };
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return bad(file, 0, "cannot read the file");
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t n = 0;
    size_t at = 0;
    while (at < content.size()) {
      const size_t nl = content.find('\n', at);
      ++n;
      if (nl == std::string::npos) return bad(file, n, "the last line is incomplete (no newline): a write was cut short");
      const std::string line = content.substr(at, nl - at);
      at = nl + 1;
      // The self hash: everything before ,"hash":" must hash to the value that follows.
      constexpr std::string_view tail = ",\"hash\":\"";
      const size_t h = line.rfind(tail);
      if (h == std::string::npos || line.size() != h + tail.size() + 64 + 2 || line.compare(line.size() - 2, 2, "\"}") != 0)
        return bad(file, n, "not an audit line (no trailing hash)");
      const std::string_view hash = std::string_view(line).substr(h + tail.size(), 64);
      if (!is_hex64(hash) || sha256_hex(std::string_view(line).substr(0, h)) != hash)
        return bad(file, n, "edited: the line's hash does not match its content");
      simdjson::dom::element doc;
      if (parser.parse(line).get(doc)) return bad(file, n, "not valid JSON");
      uint64_t seq = 0;
      std::string_view prev;
      if (doc["seq"].get(seq) || doc["prev"].get(prev)) return bad(file, n, "missing seq or prev");
      if (first) {
        if (seq != 0 && !partial)
          return bad(file, n, "the chain starts at seq " + std::to_string(seq) +
                                  ": earlier lines are missing (give every rotated file in order, or --partial)");
        if (seq == 0 && prev != std::string(64, '0')) return bad(file, n, "seq 0 must have a zero prev hash");
      } else {
        if (seq <= last_seq)
          return bad(file, n, "out of order: seq " + std::to_string(seq) + " after seq " + std::to_string(last_seq));
        if (seq != last_seq + 1)
          return bad(file, n, std::to_string(seq - last_seq - 1) + " line(s) removed before this one (seq " +
                                  std::to_string(last_seq) + " then " + std::to_string(seq) + ")");
        if (prev != sha256_hex(prev_line))
          return bad(file, n, "does not chain to the line before it (that line was rewritten, or lines were removed)");
      }
      first = false;
      last_seq = seq;
      prev_line = line;
      ++r.lines;
    }
  }
  r.ok = true;
  r.message = std::to_string(r.lines) + " line(s) in " + std::to_string(files.size()) + " file(s): chain intact";
  if (!first) r.message += " (seq up to " + std::to_string(last_seq) + ")";
  return r;
}

}  // namespace moat::audit
