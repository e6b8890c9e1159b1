#include "engine/quant/quantize_cli.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "engine/quant/quantize_folder.h"

namespace moat::engine::quant {
namespace {

void usage(FILE* to) {
  std::fprintf(to,
               "usage: moat quantize --format nf4 IN_DIR OUT_DIR\n"
               "\n"
               "Quantizes the linear weights of a Hugging Face model folder (safetensors) and writes\n"
               "OUT_DIR/model.safetensors in the bitsandbytes 4-bit layout transformers saves (NF4,\n"
               "blocks of 64, double-quantized absmax), with config.json and the other files copied.\n"
               "moat and transformers (with bitsandbytes) load the result as it is.\n"
               "\n"
               "  --format nf4   the format to write (only nf4 for now)\n"
               "  --help         this text\n");
}

}  // namespace

int run_quantize_command(int argc, char** argv) {
  std::string format;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (arg == "--format" && i + 1 < argc) {
      format = argv[++i];
    } else if (arg.rfind("--format=", 0) == 0) {
      format = arg.substr(9);
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "moat quantize: unknown option %s\n", arg.c_str());
      usage(stderr);
      return 2;
    } else {
      dirs.push_back(arg);
    }
  }
  if (format.empty() || dirs.size() != 2) {
    usage(stderr);
    return 2;
  }
  if (format != "nf4") {
    std::fprintf(stderr, "moat quantize: format '%s' is not supported (only nf4)\n", format.c_str());
    return 2;
  }
  quantize_folder_options opt;
  opt.format = format;
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) {
    opt.progress = [](size_t done, size_t total) {
      std::fprintf(stderr, "\rquantizing: %zu/%zu tensors", done, total);
      if (done == total) std::fprintf(stderr, "\n");
    };
  }
  try {
    const quantize_report r = quantize_model_folder(dirs[0], dirs[1], opt);
    std::printf("wrote %s/model.safetensors: %zu tensors, %zu quantized to nf4, %.1f MB -> %.1f MB\n", dirs[1].c_str(),
                r.tensors, r.quantized, static_cast<double>(r.bytes_in) / 1e6, static_cast<double>(r.bytes_out) / 1e6);
    return 0;
  } catch (const std::exception& e) {
    if (tty) std::fprintf(stderr, "\n");
    std::fprintf(stderr, "moat quantize: %s\n", e.what());
    return 1;
  }
}

}  // namespace moat::engine::quant
