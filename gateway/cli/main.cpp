// moat — entry point: dispatches to the subcommand named by argv[1].
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

#include "cli/commands.h"
#include "cli/version.h"

namespace {

struct command {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* summary;
};

constexpr command commands[] = {
    {"serve", moat::cli::serve_command, "run the gateway (--config FILE [--listen HOST:PORT])"},
    {"plan", moat::cli::plan_command, "what hardware a model needs, how fast, at what cost"},
    {"policy", moat::cli::policy_command, "policy tools: `policy test --config F --input F`"},
    {"audit", moat::cli::audit_command, "audit tools: `audit verify FILE`"},
    {"key", moat::cli::key_command, "API keys: `key new NAME`"},
    {"keygen", moat::cli::keygen_command, "write a new checkpoint key file"},
    {"encrypt", moat::cli::encrypt_command, "encrypt a checkpoint (AES-256-GCM)"},
    {"decrypt", moat::cli::decrypt_command, "decrypt a checkpoint"},
    {"quantize", moat::cli::quantize_command, "quantize a model folder ahead of time"},
};

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: moat <command> [options]   (moat <command> --help for more)\n\n");
  for (const auto& c : commands) std::fprintf(out, "  %-9s %s\n", c.name, c.summary);
  std::fprintf(out, "\n  --version  print the version and commit\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string_view name = argv[1];
  if (name == "--version" || name == "version") {
    std::printf("moat %s (commit %s)\n", moat::cli::version, moat::cli::commit);
    return 0;
  }
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  for (const auto& c : commands) {
    if (name == c.name) {
      try {
        return c.run(argc - 1, argv + 1);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "moat %s: %s\n", c.name, e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "moat: unknown command '%s'\n\n", argv[1]);
  print_usage(stderr);
  return 2;
}
