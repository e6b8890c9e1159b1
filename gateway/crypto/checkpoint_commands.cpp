// `moat keygen FILE`, `moat encrypt --key-file K IN OUT`, `moat decrypt --key-file K IN OUT`.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "crypto/checkpoint_file.h"
#include "crypto/key.h"

namespace moat::cli {

namespace po = boost::program_options;

namespace {

// A progress line on a terminal only: redirected stderr (CI logs) stays clean.
crypto::progress_fn terminal_progress(const char* verb) {
  if (!::isatty(STDERR_FILENO)) return {};
  return [verb, last = -1](std::uint64_t done, std::uint64_t total) mutable {
    const int pct = total ? static_cast<int>(done * 100 / total) : 100;
    if (pct == last) return;
    last = pct;
    std::fprintf(stderr, "\r%s: %.1f / %.1f MiB (%d%%)", verb, double(done) / (1 << 20),
                 double(total) / (1 << 20), pct);
    if (done >= total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

struct checkpoint_args {
  std::string key_file, key_env, in, out;
  std::uint32_t chunk_bytes = crypto::default_chunk_bytes;
};

// Returns -1 to continue, or the exit status (help, usage error).
int parse_checkpoint_args(int argc, char** argv, bool encrypt, checkpoint_args& a) {
  po::options_description opts(std::string("usage: moat ") + argv[0] +
                               " (--key-file K | --key-env VAR) IN OUT\noptions");
  opts.add_options()("help,h", "show this help")(
      "key-file", po::value(&a.key_file), "file holding the key (64 hex digits, from `moat keygen`)")(
      "key-env", po::value(&a.key_env), "environment variable holding the key instead");
  if (encrypt)
    opts.add_options()("chunk-bytes", po::value(&a.chunk_bytes)->default_value(crypto::default_chunk_bytes),
                       "plaintext bytes per authenticated chunk");
  po::options_description hidden;
  hidden.add_options()("in", po::value(&a.in))("out", po::value(&a.out));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("in", 1).add("out", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "moat " << argv[0] << ": " << e.what() << "\n" << opts;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  if (a.in.empty() || a.out.empty() || (a.key_file.empty() == a.key_env.empty())) {
    std::cerr << "moat " << argv[0] << ": need IN, OUT and one of --key-file/--key-env\n" << opts;
    return 2;
  }
  return -1;
}

int run_checkpoint(int argc, char** argv, bool encrypt) {
  checkpoint_args a;
  if (const int rc = parse_checkpoint_args(argc, argv, encrypt, a); rc >= 0) return rc;
  try {
    const auto key = crypto::load_key({a.key_file, a.key_env});
    crypto::stream_options opts{a.chunk_bytes, terminal_progress(encrypt ? "encrypting" : "decrypting")};
    if (encrypt)
      crypto::encrypt_file(a.in, a.out, key, opts);
    else
      crypto::decrypt_file(a.in, a.out, key, opts);
  } catch (const std::exception& e) {
    // Start on a fresh line when a progress line was being drawn.
    std::fprintf(stderr, "%smoat %s: %s\n", ::isatty(STDERR_FILENO) ? "\n" : "", argv[0], e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int keygen_command(int argc, char** argv) {
  const std::string arg = argc >= 2 ? argv[1] : "";
  if (arg == "--help" || arg == "-h") {
    std::printf("usage: moat keygen FILE\n  writes a new 32-byte checkpoint key as hex to FILE (mode 0600);\n"
                "  refuses to overwrite an existing file\n");
    return 0;
  }
  if (argc != 2 || arg.empty() || arg[0] == '-') {
    std::fprintf(stderr, "usage: moat keygen FILE\n");
    return 2;
  }
  try {
    crypto::write_key_file(arg, crypto::generate_key());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moat keygen: %s\n", e.what());
    return 1;
  }
  std::printf("wrote a new key to %s (mode 0600); keep it apart from the checkpoints it opens\n", arg.c_str());
  return 0;
}

int encrypt_command(int argc, char** argv) { return run_checkpoint(argc, argv, true); }
int decrypt_command(int argc, char** argv) { return run_checkpoint(argc, argv, false); }

}  // namespace moat::cli
