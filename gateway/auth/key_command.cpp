// `moat key new NAME [--models a,b] [--rpm N] [--tpm N] [--max-concurrent N]`: prints a fresh
// key (shown once, stored nowhere) and the config line that holds only its SHA-256.
// `moat key hash`: reads a key on stdin and prints its SHA-256 (to re-derive a lost line).
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "auth/api_key.h"
#include "cli/commands.h"

namespace moat::cli {

namespace po = boost::program_options;

namespace {

int key_new(int argc, char** argv) {
  std::string name, models = "*";
  std::uint64_t rpm = 0, tpm = 0, max_concurrent = 0;
  po::options_description opts("usage: moat key new NAME [options]\noptions");
  opts.add_options()("help,h", "show this help")(
      "models", po::value(&models), "comma-separated model names the key may use (default: *)")(
      "rpm", po::value(&rpm), "requests per minute (0: unlimited)")(
      "tpm", po::value(&tpm), "tokens per minute (0: unlimited)")(
      "max-concurrent", po::value(&max_concurrent), "requests in flight (0: unlimited)");
  po::options_description hidden;
  hidden.add_options()("name", po::value(&name));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "moat key new: " << e.what() << "\n" << opts;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  // The name lands in YAML, audit lines and logs: keep it to a safe alphabet.
  const bool name_ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
                       name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
                           std::string::npos;
  if (!name_ok) {
    std::cerr << "moat key new: NAME must be 1-64 of [A-Za-z0-9._-], starting with a letter or digit\n";
    return 2;
  }
  std::string model_list;
  std::size_t start = 0;
  while (start <= models.size()) {
    const auto end = std::min(models.find(',', start), models.size());
    const std::string m = models.substr(start, end - start);
    if (m.empty() || m.find_first_of("\"\\\n") != std::string::npos) {
      std::cerr << "moat key new: --models: empty or invalid model name\n";
      return 2;
    }
    model_list += (model_list.empty() ? "\"" : ", \"") + m + "\"";
    start = end + 1;
  }
  const std::string key = auth::generate_api_key();
  std::printf("%s\n", key.c_str());
  std::printf("  - { name: %s, sha256: %s, models: [%s]", name.c_str(), auth::to_hex(auth::digest_of(key)).c_str(),
              model_list.c_str());
  if (rpm) std::printf(", rpm: %llu", static_cast<unsigned long long>(rpm));
  if (tpm) std::printf(", tpm: %llu", static_cast<unsigned long long>(tpm));
  if (max_concurrent) std::printf(", max_concurrent: %llu", static_cast<unsigned long long>(max_concurrent));
  std::printf(" }\n");
  std::fprintf(stderr,
               "the first line is the key: give it to its user now, it is not stored anywhere.\n"
               "the second goes under auth.api_keys (or into the keys file).\n");
  return 0;
}

int key_hash() {
  std::string key;
  std::getline(std::cin, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (key.empty()) {
    std::cerr << "moat key hash: no key on stdin\n";
    return 2;
  }
  std::printf("%s\n", auth::to_hex(auth::digest_of(key)).c_str());
  return 0;
}

}  // namespace

int key_command(int argc, char** argv) {
  const std::string sub = argc >= 2 ? argv[1] : "";
  if (sub == "new") return key_new(argc - 1, argv + 1);
  if (sub == "hash") return key_hash();
  std::FILE* out = (sub == "--help" || sub == "-h") ? stdout : stderr;
  std::fprintf(out,
               "usage: moat key new NAME [--models a,b] [--rpm N] [--tpm N] [--max-concurrent N]\n"
               "       moat key hash            (key on stdin -> its sha256)\n");
  return out == stdout ? 0 : 2;
}

}  // namespace moat::cli
