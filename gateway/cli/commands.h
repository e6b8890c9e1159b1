// The `moat` subcommands. Each takes the arguments after its own name (argv[0] is the
// subcommand name) and returns the process exit status. Each lives with the concern it serves:
//   serve    gateway/serve_command.cpp
//   plan     planner/plan_command.cpp
//   policy   gateway/policy/policy_command.cpp      (`moat policy test ...`)
//   audit    gateway/audit/audit_command.cpp        (`moat audit verify FILE`)
//   key      gateway/auth/key_command.cpp           (`moat key new NAME`)
//   keygen, encrypt, decrypt   gateway/crypto/checkpoint_commands.cpp
//   quantize backends/engine/quantize_command.cpp
#pragma once

namespace moat::cli {

int serve_command(int argc, char** argv);
int plan_command(int argc, char** argv);
int policy_command(int argc, char** argv);
int audit_command(int argc, char** argv);
int key_command(int argc, char** argv);
int keygen_command(int argc, char** argv);
int encrypt_command(int argc, char** argv);
int decrypt_command(int argc, char** argv);
int quantize_command(int argc, char** argv);

}  // namespace moat::cli
