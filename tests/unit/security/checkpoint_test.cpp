// Encrypted checkpoints: round trip, no plaintext in the ciphertext, and every tampering case
// failing with a message that names the file and the chunk.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <set>
#include <filesystem>
#include <fstream>
#include <random>

#include "crypto/checkpoint_file.h"
#include "crypto/key.h"

namespace fs = std::filesystem;
using namespace moat::crypto;

namespace {

constexpr std::uint32_t chunk = 4096;  // small chunks: many of them in a small file

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

std::vector<std::uint8_t> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::vector<std::uint8_t>& v) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size()));
}

class checkpoint_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moat_ckpt_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    key_ = generate_key();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Encrypts `plain` and returns the path of the encrypted file.
  fs::path encrypt(const std::vector<std::uint8_t>& plain, std::uint32_t chunk_bytes = chunk) {
    write_all(dir_ / "plain.bin", plain);
    encrypt_file((dir_ / "plain.bin").string(), (dir_ / "enc.bin").string(), key_, {chunk_bytes, {}});
    return dir_ / "enc.bin";
  }
  // The message decrypt_file_to_memory throws, or "" when it succeeds.
  std::string failure(const fs::path& p, const checkpoint_key* key = nullptr) {
    try {
      decrypt_file_to_memory(p.string(), key ? *key : key_);
    } catch (const checkpoint_error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  checkpoint_key key_;
};

}  // namespace

TEST_F(checkpoint_test, round_trips_bit_for_bit_through_memory_and_file) {
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{chunk - 1}, std::size_t{chunk},
                           std::size_t{chunk + 1}, std::size_t{5 * chunk}, std::size_t{5 * chunk + 77}}) {
    SCOPED_TRACE(size);
    const auto plain = random_bytes(size, static_cast<unsigned>(size));
    const auto enc = encrypt(plain);
    EXPECT_EQ(fs::file_size(enc), header_bytes + size + tag_bytes * std::max<std::size_t>(1, (size + chunk - 1) / chunk));
    EXPECT_TRUE(is_encrypted_checkpoint(enc.string()));
    EXPECT_FALSE(is_encrypted_checkpoint((dir_ / "plain.bin").string()) && size >= 8);
    const plaintext_buffer mem = decrypt_file_to_memory(enc.string(), key_);
    ASSERT_EQ(mem.size(), size);
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), mem.data()));
    decrypt_file(enc.string(), (dir_ / "out.bin").string(), key_);
    EXPECT_EQ(read_all(dir_ / "out.bin"), plain);
    EXPECT_FALSE(fs::exists(dir_ / "out.bin.part"));
  }
}

TEST_F(checkpoint_test, ciphertext_holds_no_32_byte_run_of_the_plaintext) {
  // Low-entropy plaintext (repeated text) is the worst case for leaks through a weak mode.
  std::vector<std::uint8_t> plain;
  const std::string line = "the quick brown fox jumps over the lazy dog 0123456789\n";
  while (plain.size() < 20 * chunk) plain.insert(plain.end(), line.begin(), line.end());
  const auto enc = read_all(encrypt(plain));
  std::set<std::string> windows;
  for (std::size_t i = 0; i + 32 <= plain.size(); ++i)
    windows.emplace(reinterpret_cast<const char*>(plain.data() + i), 32);
  for (std::size_t i = 0; i + 32 <= enc.size(); ++i)
    ASSERT_FALSE(windows.count(std::string(reinterpret_cast<const char*>(enc.data() + i), 32)))
        << "plaintext run at offset " << i;
}

TEST_F(checkpoint_test, two_encryptions_differ) {
  const auto plain = random_bytes(3 * chunk, 1);
  const auto a = read_all(encrypt(plain));
  const auto b = read_all(encrypt(plain));
  EXPECT_NE(a, b);  // fresh nonce base per file
}

TEST_F(checkpoint_test, wrong_key_fails_at_chunk_zero) {
  const auto enc = encrypt(random_bytes(3 * chunk, 2));
  const checkpoint_key other = generate_key();
  const std::string msg = failure(enc, &other);
  EXPECT_NE(msg.find(enc.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("chunk 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wrong key"), std::string::npos) << msg;
}

TEST_F(checkpoint_test, flipped_byte_in_header_fails) {
  const auto enc = encrypt(random_bytes(3 * chunk, 3));
  const auto good = read_all(enc);
  // Every header byte: magic/version/size give a header error, the nonce base fails chunk 0.
  for (std::size_t at = 0; at < header_bytes; ++at) {
    auto bad = good;
    bad[at] ^= 0x01;
    write_all(enc, bad);
    const std::string msg = failure(enc);
    EXPECT_NE(msg, "") << "header byte " << at;
    EXPECT_NE(msg.find(enc.string()), std::string::npos) << msg;
    EXPECT_TRUE(msg.find("header") != std::string::npos || msg.find("magic") != std::string::npos ||
                msg.find("chunk 0") != std::string::npos) << msg;
  }
}

TEST_F(checkpoint_test, flipped_byte_in_middle_chunk_names_it) {
  const auto enc = encrypt(random_bytes(5 * chunk, 4));
  auto bad = read_all(enc);
  bad[header_bytes + 2 * (chunk + tag_bytes) + 100] ^= 0x80;  // inside chunk 2's ciphertext
  write_all(enc, bad);
  const std::string msg = failure(enc);
  EXPECT_NE(msg.find("chunk 2: authentication failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find(enc.string()), std::string::npos) << msg;
}

TEST_F(checkpoint_test, flipped_byte_in_tag_names_the_chunk) {
  const auto enc = encrypt(random_bytes(5 * chunk, 5));
  auto bad = read_all(enc);
  bad[header_bytes + 2 * (chunk + tag_bytes) - 3] ^= 0x10;  // inside chunk 1's tag
  write_all(enc, bad);
  EXPECT_NE(failure(enc).find("chunk 1: authentication failed"), std::string::npos) << failure(enc);
}

TEST_F(checkpoint_test, truncation_at_a_chunk_boundary_is_detected) {
  const auto enc = encrypt(random_bytes(5 * chunk, 6));
  auto bad = read_all(enc);
  bad.resize(header_bytes + 3 * (chunk + tag_bytes));  // chunks 0..2 remain
  write_all(enc, bad);
  const std::string msg = failure(enc);
  EXPECT_NE(msg.find("chunk 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST_F(checkpoint_test, truncation_inside_a_chunk_is_detected) {
  const auto enc = encrypt(random_bytes(5 * chunk, 7));
  auto bad = read_all(enc);
  ASSERT_GT(bad.size(), 1000u);
  // erase, not resize: GCC 12 cannot see that resize only shrinks here and warns.
  bad.erase(bad.end() - 1000, bad.end());
  write_all(enc, bad);
  EXPECT_NE(failure(enc).find("chunk 4"), std::string::npos) << failure(enc);
  bad.erase(bad.begin() + header_bytes + 5, bad.end());
  write_all(enc, bad);
  EXPECT_NE(failure(enc).find("truncated"), std::string::npos) << failure(enc);
}

TEST_F(checkpoint_test, appended_chunk_is_detected) {
  const auto enc = encrypt(random_bytes(3 * chunk, 8));
  auto bad = read_all(enc);
  // Append a copy of chunk 1: a well-formed record sealed under the same key.
  const auto* c1 = bad.data() + header_bytes + (chunk + tag_bytes);
  std::vector<std::uint8_t> copy(c1, c1 + chunk + tag_bytes);
  bad.insert(bad.end(), copy.begin(), copy.end());
  write_all(enc, bad);
  const std::string msg = failure(enc);
  EXPECT_NE(msg.find("chunk 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("appended"), std::string::npos) << msg;
}

TEST_F(checkpoint_test, reordered_chunks_are_detected) {
  const auto enc = encrypt(random_bytes(4 * chunk, 9));
  auto bad = read_all(enc);
  const std::size_t rec = chunk + tag_bytes;
  std::swap_ranges(bad.begin() + header_bytes + rec, bad.begin() + header_bytes + 2 * rec,
                   bad.begin() + header_bytes + 2 * rec);
  write_all(enc, bad);
  EXPECT_NE(failure(enc).find("chunk 1: authentication failed"), std::string::npos) << failure(enc);
}

TEST_F(checkpoint_test, failed_decrypt_leaves_no_output_file) {
  const auto enc = encrypt(random_bytes(4 * chunk, 10));
  auto bad = read_all(enc);
  bad[bad.size() - 5] ^= 1;  // last chunk: chunks 0..2 would already be written
  write_all(enc, bad);
  EXPECT_THROW(decrypt_file(enc.string(), (dir_ / "out.bin").string(), key_), checkpoint_error);
  EXPECT_FALSE(fs::exists(dir_ / "out.bin"));
  EXPECT_FALSE(fs::exists(dir_ / "out.bin.part"));
}

TEST_F(checkpoint_test, not_a_checkpoint_is_a_clear_error) {
  write_all(dir_ / "x.safetensors", random_bytes(100, 11));
  EXPECT_NE(failure(dir_ / "x.safetensors").find("bad magic"), std::string::npos);
  EXPECT_NE(failure(dir_ / "missing").find("cannot open"), std::string::npos);
}

TEST_F(checkpoint_test, key_file_is_hex_mode_0600_and_never_overwritten) {
  const auto path = (dir_ / "k.key").string();
  const checkpoint_key key = generate_key();
  write_key_file(path, key);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto text = read_all(path);
  EXPECT_EQ(text.size(), 65u);
  const checkpoint_key back = load_key({path, ""});
  EXPECT_EQ(std::memcmp(back.data(), key.data(), key_bytes), 0);
  EXPECT_THROW(write_key_file(path, key), std::runtime_error);
}

TEST_F(checkpoint_test, key_from_environment_and_bad_keys) {
  ::setenv("MOAT_TEST_CKPT_KEY", "  00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n", 1);
  const checkpoint_key k = load_key({"", "MOAT_TEST_CKPT_KEY"});
  EXPECT_EQ(k.data()[1], 0x11);
  EXPECT_EQ(k.data()[31], 0xff);
  ::setenv("MOAT_TEST_CKPT_KEY", "00112233", 1);
  try {
    load_key({"", "MOAT_TEST_CKPT_KEY"});
    FAIL() << "short key accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find("00112233"), std::string::npos) << "key text echoed";
  }
  ::unsetenv("MOAT_TEST_CKPT_KEY");
  EXPECT_THROW(load_key({"", "MOAT_TEST_CKPT_KEY"}), std::runtime_error);
  EXPECT_THROW(load_key({"a", "b"}), std::runtime_error);
}

TEST_F(checkpoint_test, commands_round_trip_through_the_binary) {
  const fs::path moat = fs::path(MOAT_BINARY_DIR) / "bin" / "moat";
  if (!fs::exists(moat)) GTEST_SKIP() << "build/bin/moat not built in this tree";
  const auto plain = random_bytes(3 * chunk + 5, 12);
  write_all(dir_ / "p.bin", plain);
  const std::string d = dir_.string();
  const std::string m = moat.string();
  ASSERT_EQ(std::system((m + " keygen " + d + "/k >/dev/null").c_str()), 0);
  ASSERT_EQ(std::system((m + " encrypt --key-file " + d + "/k " + d + "/p.bin " + d + "/e.bin 2>/dev/null").c_str()), 0);
  ASSERT_EQ(std::system((m + " decrypt --key-file " + d + "/k " + d + "/e.bin " + d + "/o.bin 2>/dev/null").c_str()), 0);
  EXPECT_EQ(read_all(dir_ / "o.bin"), plain);
  ASSERT_EQ(std::system((m + " keygen " + d + "/k2 >/dev/null").c_str()), 0);
  EXPECT_NE(std::system((m + " decrypt --key-file " + d + "/k2 " + d + "/e.bin " + d + "/o2.bin 2>/dev/null").c_str()), 0);
  EXPECT_FALSE(fs::exists(dir_ / "o2.bin"));
}
