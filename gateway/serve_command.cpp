// Placeholder until this subcommand is built; its owner replaces this file.
#include <cstdio>

#include "cli/commands.h"

namespace moat::cli {

int serve_command(int, char** argv) {
  std::fprintf(stderr, "moat %s: not built yet\n", argv[0]);
  return 2;
}

}  // namespace moat::cli
