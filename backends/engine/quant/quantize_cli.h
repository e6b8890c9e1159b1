// `moat quantize --format nf4 IN_DIR OUT_DIR`: the body of the subcommand (the cli entry
// backends/engine/quantize_command.cpp calls it). Returns the exit status: 0 done, 1 failed
// (the reason on stderr), 2 bad usage. Progress shows on a terminal only.
//
//   return moat::engine::quant::run_quantize_command(argc, argv);   // argv[0] = "quantize"
#pragma once

namespace moat::engine::quant {

int run_quantize_command(int argc, char** argv);

}  // namespace moat::engine::quant
