// GGUF header reading: the fixture's shape, and truncated or foreign files as clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "formats.h"
#include "gguf_header.h"
#include "model_spec.h"

namespace moat::planner {
namespace {

namespace fs = std::filesystem;

const std::string fixture = std::string(MOAT_FIXTURES_DIR) + "/llama2-tiny-random-gguf/llama-2-tiny-random.gguf";

TEST(gguf_header, reads_the_fixture_shape) {
  if (!fs::exists(fixture)) GTEST_SKIP() << "fixture absent: " << fixture;
  const model_spec m = load_model(fixture);
  // The fixtures README: embedding_length 8, block_count 1, feed_forward_length 32, 2 heads,
  // 2 KV heads, 32,000 tokens, output.weight stored (untied), context_length 4096.
  EXPECT_EQ(m.hidden, 8);
  EXPECT_EQ(m.layers, 1);
  EXPECT_EQ(m.intermediate, 32);
  EXPECT_EQ(m.heads, 2);
  EXPECT_EQ(m.kv_heads, 2);
  EXPECT_EQ(m.head_dim, 4);
  EXPECT_EQ(m.vocab, 32000);
  EXPECT_EQ(m.max_context, 4096);
  EXPECT_FALSE(m.tied_embeddings);
  // Its F16 tensors hold 513,024 values and its F32 norms 24: 1,026,144 data bytes, which the
  // README says fill the file exactly from offset 724,416 to 1,750,560.
  EXPECT_EQ(m.total_params(), 513'048);
  EXPECT_EQ(2 * (m.total_params() - 3 * m.hidden) + 4 * 3 * m.hidden, 1'750'560 - 724'416);
}

TEST(gguf_header, vocabulary_only_files_are_refused) {
  const std::string vocab = std::string(MOAT_FIXTURES_DIR) + "/llamacpp-vocab/ggml-vocab-llama-spm.gguf";
  if (!fs::exists(vocab)) GTEST_SKIP() << "fixture absent: " << vocab;
  try {
    load_model(vocab);
    FAIL() << "a GGUF without tensors was sized";
  } catch (const plan_error& e) {
    EXPECT_NE(std::string(e.what()).find("no tensors"), std::string::npos) << e.what();
  }
}

TEST(gguf_header, truncated_and_foreign_files_are_errors) {
  if (!fs::exists(fixture)) GTEST_SKIP() << "fixture absent: " << fixture;
  std::ifstream in(fixture, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const fs::path tmp = fs::temp_directory_path() / "moat_planner_cut.gguf";
  for (std::size_t cut : {std::size_t{3}, std::size_t{20}, std::size_t{5000}, std::size_t{700000}}) {
    std::ofstream(tmp, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    EXPECT_THROW(read_gguf_shape(tmp.string()), plan_error) << cut;
  }
  std::string foreign = bytes;
  foreign[0] = 'X';
  std::ofstream(tmp, std::ios::binary).write(foreign.data(), static_cast<std::streamsize>(foreign.size()));
  EXPECT_THROW(read_gguf_shape(tmp.string()), plan_error);
  // A huge array count must fail on the file's size, not allocate or loop for ever.
  std::string huge = bytes;
  const std::string key = "tokenizer.ggml.scores";
  const auto at = huge.find(key);
  ASSERT_NE(at, std::string::npos);
  const std::size_t count_at = at + key.size() + 4 /*type array*/ + 4 /*inner type*/;
  for (int i = 0; i < 8; ++i) huge[count_at + i] = static_cast<char>(0x7f);
  std::ofstream(tmp, std::ios::binary).write(huge.data(), static_cast<std::streamsize>(huge.size()));
  EXPECT_THROW(read_gguf_shape(tmp.string()), plan_error);
  fs::remove(tmp);
}

}  // namespace
}  // namespace moat::planner
