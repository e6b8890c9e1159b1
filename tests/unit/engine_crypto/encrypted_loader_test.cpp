// The loaders read encrypted checkpoints (gateway/crypto) when the model options name a key:
// an encrypted copy of each fixture format (HF safetensors folder, GGUF, llama2.c .bin), made
// here in a temp dir with encrypt_file, gives bit-identical logits to the plaintext; a wrong
// key, a flipped byte and a cut file each fail at load naming the file and the chunk; an
// encrypted file without a key and a plaintext file with one are refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "../support/greedy_logits.h"
#include "cpu/cpu_runner.h"
#include "crypto/checkpoint_file.h"
#include "crypto/key.h"
#include "engine/gguf.h"
#include "engine/loader.h"
#include "engine/model_error.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& rel) { return fs::path(MOAT_FIXTURES_DIR) / rel; }

// Small chunks so the fixture files span many of them (a "middle chunk" exists to corrupt).
constexpr std::uint32_t test_chunk_bytes = 64 * 1024;

class encrypted_loader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moat_crypto_loader_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    key_file_ = dir_ / "model.key";
    crypto::write_key_file(key_file_.string(), crypto::generate_key());
    other_key_file_ = dir_ / "other.key";
    crypto::write_key_file(other_key_file_.string(), crypto::generate_key());
  }
  void TearDown() override { fs::remove_all(dir_); }

  void encrypt(const fs::path& in, const fs::path& out) {
    crypto::encrypt_file(in.string(), out.string(), crypto::load_key({.key_file = key_file_.string(), .key_env = {}}),
                         {.chunk_bytes = test_chunk_bytes, .progress = {}});
  }

  // An HF folder in the temp dir: the small json files copied, model.safetensors encrypted.
  fs::path encrypted_hf_copy() {
    const fs::path src = fixture("tinystories-656K-hf");
    const fs::path out = dir_ / "hf";
    fs::create_directories(out);
    for (const auto& e : fs::directory_iterator(src)) {
      if (e.path().extension() == ".json") fs::copy_file(e.path(), out / e.path().filename());
    }
    encrypt(src / "model.safetensors", out / "model.safetensors");
    return out;
  }

  engine::load_options with_key(const fs::path& key) const {
    engine::load_options o;
    o.key = crypto::key_source{.key_file = key.string(), .key_env = {}};
    return o;
  }

  fs::path dir_, key_file_, other_key_file_;
};

using test_support::expect_bit_identical;

// Loads and returns the model_error text ("" when it loaded).
std::string load_error(const fs::path& p, const engine::load_options& o) {
  try {
    engine::load_model(p, o);
  } catch (const engine::model_error& e) {
    return e.what();
  }
  return "";
}

void flip_byte(const fs::path& p, std::uint64_t offset) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// Byte offset of the first ciphertext byte of chunk i (header 32 bytes, each record chunk + tag).
std::uint64_t chunk_offset(std::uint64_t i) {
  return crypto::header_bytes + i * (test_chunk_bytes + crypto::tag_bytes);
}

TEST_F(encrypted_loader, safetensors_folder_gives_bit_identical_logits) {
  if (!fs::exists(fixture("tinystories-656K-hf/model.safetensors"))) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
  const fs::path enc = encrypted_hf_copy();
  ASSERT_TRUE(crypto::is_encrypted_checkpoint((enc / "model.safetensors").string()));
  const auto plain = engine::load_model(fixture("tinystories-656K-hf"));
  const auto decrypted = engine::load_model(enc, with_key(key_file_));
  EXPECT_EQ(decrypted.format, "safetensors");
  EXPECT_EQ(decrypted.config.vocab_size, plain.config.vocab_size);
  const std::vector<int32_t> prompt = {1, 147, 201, 282, 215};
  expect_bit_identical(test_support::greedy_logits(decrypted, prompt, 8),
                       test_support::greedy_logits(plain, prompt, 8));
  // The path of the weights file itself means the folder, as for plaintext.
  const auto by_file = engine::load_model(enc / "model.safetensors", with_key(key_file_));
  expect_bit_identical(test_support::greedy_logits(by_file, prompt, 0),
                       test_support::greedy_logits(plain, prompt, 0));
}

TEST_F(encrypted_loader, key_from_environment_variable) {
  if (!fs::exists(fixture("tinystories-656K-hf/model.safetensors"))) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
  const fs::path enc = encrypted_hf_copy();
  std::ifstream in(key_file_);
  std::string hex;
  in >> hex;
  ::setenv("MOAT_TEST_CRYPTO_LOADER_KEY", hex.c_str(), 1);
  engine::load_options o;
  o.key = crypto::key_source{.key_file = {}, .key_env = "MOAT_TEST_CRYPTO_LOADER_KEY"};
  EXPECT_NO_THROW(engine::load_model(enc, o));
  ::unsetenv("MOAT_TEST_CRYPTO_LOADER_KEY");
  const std::string err = load_error(enc, o);
  EXPECT_NE(err.find("MOAT_TEST_CRYPTO_LOADER_KEY"), std::string::npos) << err;
}

TEST_F(encrypted_loader, gguf_gives_bit_identical_logits) {
  const fs::path src = fixture("llama2-tiny-random-gguf/llama-2-tiny-random.gguf");
  if (!fs::exists(src)) GTEST_SKIP() << "fixture llama2-tiny-random-gguf is absent";
  const fs::path enc = dir_ / "model.gguf";
  encrypt(src, enc);
  const auto plain = engine::load_model(src);
  const auto decrypted = engine::load_model(enc, with_key(key_file_));
  EXPECT_EQ(decrypted.format, "gguf");
  ASSERT_TRUE(decrypted.tokenizer.gguf);
  EXPECT_EQ(decrypted.tokenizer.gguf->metadata().size(), plain.tokenizer.gguf->metadata().size());
  const std::vector<int32_t> prompt = {1, 15043, 3186};
  expect_bit_identical(test_support::greedy_logits(decrypted, prompt, 4),
                       test_support::greedy_logits(plain, prompt, 4));
  EXPECT_NE(load_error(enc, {}).find("is encrypted; set key_file or key_env"), std::string::npos);
}

TEST_F(encrypted_loader, llama2c_gives_bit_identical_logits) {
  const fs::path src = fixture("llama2c-stories260K/stories260K.bin");
  if (!fs::exists(src)) GTEST_SKIP() << "fixture llama2c-stories260K is absent";
  const fs::path enc = dir_ / "stories260K.bin";
  encrypt(src, enc);
  auto o = with_key(key_file_);
  o.llama2c_tokenizer = fixture("llama2c-stories260K/tok512.bin");  // stays plaintext
  const auto plain = engine::load_model(src);
  const auto decrypted = engine::load_model(enc, o);
  EXPECT_EQ(decrypted.format, "llama2c");
  const std::vector<int32_t> prompt = {1};
  expect_bit_identical(test_support::greedy_logits(decrypted, prompt, 6),
                       test_support::greedy_logits(plain, prompt, 6));
}

TEST_F(encrypted_loader, wrong_key_fails_naming_file_and_chunk) {
  if (!fs::exists(fixture("tinystories-656K-hf/model.safetensors"))) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
  const fs::path enc = encrypted_hf_copy();
  const std::string err = load_error(enc, with_key(other_key_file_));
  EXPECT_NE(err.find((enc / "model.safetensors").string()), std::string::npos) << err;
  EXPECT_NE(err.find("chunk 0"), std::string::npos) << err;
  EXPECT_NE(err.find("wrong key"), std::string::npos) << err;
}

TEST_F(encrypted_loader, flipped_byte_in_a_middle_chunk_fails_naming_it) {
  if (!fs::exists(fixture("tinystories-656K-hf/model.safetensors"))) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
  const fs::path enc = encrypted_hf_copy();
  flip_byte(enc / "model.safetensors", chunk_offset(7) + 100);
  const std::string err = load_error(enc, with_key(key_file_));
  EXPECT_NE(err.find((enc / "model.safetensors").string()), std::string::npos) << err;
  EXPECT_NE(err.find("chunk 7"), std::string::npos) << err;
}

TEST_F(encrypted_loader, truncated_file_fails_naming_file_and_chunk) {
  if (!fs::exists(fixture("tinystories-656K-hf/model.safetensors"))) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
  const fs::path enc = encrypted_hf_copy();
  const fs::path weights = enc / "model.safetensors";
  fs::resize_file(weights, chunk_offset(5));  // cut on a record boundary: chunk 4 is now last
  const std::string err = load_error(enc, with_key(key_file_));
  EXPECT_NE(err.find(weights.string()), std::string::npos) << err;
  EXPECT_NE(err.find("chunk 4"), std::string::npos) << err;
  EXPECT_NE(err.find("truncat"), std::string::npos) << err;
}

TEST_F(encrypted_loader, encrypted_file_without_key_is_refused) {
  if (!fs::exists(fixture("tinystories-656K-hf/model.safetensors"))) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
  const fs::path enc = encrypted_hf_copy();
  const std::string err = load_error(enc, {});
  EXPECT_NE(err.find((enc / "model.safetensors").string()), std::string::npos) << err;
  EXPECT_NE(err.find("is encrypted; set key_file or key_env"), std::string::npos) << err;
}

TEST_F(encrypted_loader, plaintext_file_with_key_is_refused) {
  if (!fs::exists(fixture("tinystories-656K-hf/model.safetensors"))) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
  const std::string err = load_error(fixture("tinystories-656K-hf"), with_key(key_file_));
  EXPECT_NE(err.find("model.safetensors"), std::string::npos) << err;
  EXPECT_NE(err.find("not an encrypted checkpoint"), std::string::npos) << err;
  const fs::path gguf = fixture("llama2-tiny-random-gguf/llama-2-tiny-random.gguf");
  if (fs::exists(gguf)) {
    EXPECT_NE(load_error(gguf, with_key(key_file_)).find("not an encrypted checkpoint"), std::string::npos);
  }
}

TEST_F(encrypted_loader, missing_key_file_is_named_without_loading) {
  if (!fs::exists(fixture("tinystories-656K-hf/model.safetensors"))) GTEST_SKIP() << "fixture tinystories-656K-hf is absent";
  const fs::path enc = encrypted_hf_copy();
  const std::string err = load_error(enc, with_key(dir_ / "absent.key"));
  EXPECT_NE(err.find("absent.key"), std::string::npos) << err;
}

// UBSan found static_cast<int64_t> of an out-of-range f32 metadata value; the input is now a
// corpus entry. It must parse or fail with model_error, and never give a float an int view.
TEST(gguf_float_metadata, out_of_range_float_is_not_cast) {
  const fs::path input = fs::path(MOAT_SOURCE_DIR) / "fuzz/corpus/gguf/float_to_int_overflow";
  if (!fs::exists(input)) GTEST_SKIP() << "fuzz corpus input absent";
  try {
    auto g = engine::gguf_file::open(input);
    for (const auto& [key, value] : g->metadata()) {
      if (value.type == engine::gguf_type::f32 || value.type == engine::gguf_type::f64) {
        EXPECT_THROW(g->get_int(key), engine::model_error) << key;
      }
    }
  } catch (const engine::model_error&) {
    SUCCEED();
  }
}

}  // namespace
}  // namespace moat::test
