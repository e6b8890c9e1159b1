// `moat quantize`: the subcommand's entry; the body lives with the formats
// (engine/quant/quantize_cli.cpp, linked into moat_engine as moat_quant_tools).
#include "cli/commands.h"
#include "engine/quant/quantize_cli.h"

namespace moat::cli {

int quantize_command(int argc, char** argv) { return engine::quant::run_quantize_command(argc, argv); }

}  // namespace moat::cli
