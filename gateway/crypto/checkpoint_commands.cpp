// Placeholder until these subcommands are built; their owner replaces this file.
#include <cstdio>

#include "cli/commands.h"

namespace moat::cli {

namespace {
int not_built(char** argv) {
  std::fprintf(stderr, "moat %s: not built yet\n", argv[0]);
  return 2;
}
}  // namespace

int keygen_command(int, char** argv) { return not_built(argv); }
int encrypt_command(int, char** argv) { return not_built(argv); }
int decrypt_command(int, char** argv) { return not_built(argv); }

}  // namespace moat::cli
