// `moat audit verify FILE...`: exit 0 when the chain is intact, 1 naming the first bad line,
// 2 on usage errors. One FILE that has rotated siblings (FILE.000001, ...) checks them all.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "audit/audit_verify.h"
#include "cli/commands.h"

namespace moat::cli {

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: moat audit verify [--partial] FILE [FILE...]\n\n"
               "Checks the hash chain of an audit log. Files are one chain, oldest first; a single\n"
               "FILE with rotated siblings (FILE.000001, FILE.000002, ...) checks all of them.\n"
               "  --partial  accept a chain whose first line is not seq 0 (older files removed)\n"
               "Exit status: 0 intact, 1 the first bad line is named, 2 usage error.\n");
}

}  // namespace

int audit_command(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "verify") != 0) {
    std::fprintf(stderr, "moat audit: unknown action '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
  }
  bool partial = false;
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--partial") == 0) partial = true;
    else if (std::strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      std::fprintf(stderr, "moat audit verify: unknown option %s\n", argv[i]);
      return 2;
    } else {
      files.push_back(argv[i]);
    }
  }
  if (files.empty()) {
    usage(stderr);
    return 2;
  }
  if (files.size() == 1) {
    auto all = audit::chain_files(files[0]);
    if (all.size() > 1) files = std::move(all);
  }
  for (const auto& f : files) {
    if (!std::filesystem::is_regular_file(f)) {
      std::fprintf(stderr, "moat audit verify: %s: no such file\n", f.c_str());
      return 2;
    }
  }
  const auto r = audit::verify_files(files, partial);
  std::fprintf(r.ok ? stdout : stderr, "%s%s\n", r.ok ? "ok: " : "FAILED: ", r.message.c_str());
  return r.ok ? 0 : 1;
}

}  // namespace moat::cli
