// llama.cpp's tokenizer test vectors (46 strings) for the GGUF vocabularies, and llama2.c's
// tokenizer export against the same strings through the SentencePiece reference.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/tokenizer.h"

namespace moat::engine {
namespace {

namespace fs = std::filesystem;
const fs::path fixtures = MOAT_FIXTURES_DIR;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// .inp: strings separated by "\n__ggml_vocab_test__\n"; .out: one line of ids per string.
struct vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<token_id>> expected;
};

vectors read_vectors(const fs::path& base) {
  vectors v;
  const std::string inp = slurp(base.string() + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t start = 0;
  for (size_t pos; (pos = inp.find(sep, start)) != std::string::npos; start = pos + sep.size())
    v.inputs.push_back(inp.substr(start, pos - start));
  std::istringstream out(slurp(base.string() + ".out"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<token_id> ids;
    for (token_id id; ls >> id;) ids.push_back(id);
    v.expected.push_back(ids);
  }
  return v;
}

void check_vocab_vectors(const char* name) {
  const fs::path gguf = fixtures / "llamacpp-vocab" / name;
  if (!fs::exists(gguf)) GTEST_SKIP() << "fixture missing: " << gguf;
  auto tok = load_tokenizer(gguf);
  const vectors v = read_vectors(gguf);
  // The files hold 46 strings (the README's "47" counts the empty piece after the last separator).
  ASSERT_EQ(v.inputs.size(), 46u);
  ASSERT_EQ(v.expected.size(), v.inputs.size());
  int failures = 0;
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    const auto ids = tok->encode(v.inputs[i], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, v.expected[i]) << "string " << i << ": \"" << v.inputs[i] << "\"";
    failures += ids != v.expected[i];
  }
  EXPECT_EQ(failures, 0);
}

TEST(tokenizer_vectors, llamacpp_spm_all_vectors) { check_vocab_vectors("ggml-vocab-llama-spm.gguf"); }
TEST(tokenizer_vectors, llamacpp_gpt2_all_vectors) { check_vocab_vectors("ggml-vocab-gpt-2.gguf"); }

}  // namespace
}  // namespace moat::engine
