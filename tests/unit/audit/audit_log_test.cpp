#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "audit/audit_log.h"
#include "audit/audit_verify.h"
#include "cli/commands.h"

namespace moat::audit {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  std::random_device rd;
  auto p = fs::temp_directory_path() / ("moat-audit-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(p);
  return p;
}

audit_record sample(int i) {
  audit_record r;
  r.id = "chatcmpl-" + std::to_string(i);
  r.key_name = "team-a";
  r.model = "stories15m";
  r.status = i % 5 == 0 ? 403 : 200;
  r.latency_ms = 1.5 * i;
  r.tokens_prompt = 10 + i;
  r.tokens_completion = 20;
  r.decisions.push_back({"pii", "email", "redact", 1});
  r.tags.emplace_back("prompt_injection", "none");
  r.request = "mail [EMAIL] \"quoted\" \n\x01 and \xff bad byte";
  return r;
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines) {
  std::ofstream out(p, std::ios::trunc);
  for (const auto& l : lines) out << l << "\n";
}

fs::path write_log(int n, uint64_t max_bytes = 0) {
  const auto dir = temp_dir();
  audit_config c;
  c.path = (dir / "audit.jsonl").string();
  c.max_bytes = max_bytes;
  audit_log log(c);
  for (int i = 0; i < n; ++i) EXPECT_TRUE(log.submit(sample(i)));
  log.flush();
  EXPECT_EQ(log.written(), static_cast<uint64_t>(n));
  return dir / "audit.jsonl";
}

TEST(audit, lines_are_json_and_chain_verifies) {
  const auto path = write_log(20);
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 20u);
  EXPECT_EQ(lines[0].rfind("{\"seq\":0,\"id\":\"chatcmpl-0\"", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("\"prev\":\"" + std::string(64, '0') + "\""), std::string::npos);
  EXPECT_NE(lines[0].find("\\ufffd bad byte"), std::string::npos);  // invalid UTF-8 never breaks JSON
  EXPECT_NE(lines[0].find("\"key\":\"team-a\""), std::string::npos);
  const auto r = verify_files({path.string()});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.lines, 20u);
}

TEST(audit, verify_catches_an_edit) {
  const auto path = write_log(10);
  auto lines = read_lines(path);
  const size_t at = lines[4].find("\"status\":200");
  ASSERT_NE(at, std::string::npos);
  lines[4].replace(at, 12, "\"status\":201");
  write_lines(path, lines);
  const auto r = verify_files({path.string()});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.line, 5u) << r.message;
  EXPECT_NE(r.message.find("edited"), std::string::npos);
}

TEST(audit, verify_catches_an_edit_with_a_recomputed_hash) {
  const auto path = write_log(10);
  auto lines = read_lines(path);
  std::string& l = lines[3];
  const size_t h = l.rfind(",\"hash\":\"");
  std::string body = l.substr(0, h);
  body.replace(body.find("team-a"), 6, "team-b");
  l = body + ",\"hash\":\"" + sha256_hex(body) + "\"}";
  write_lines(path, lines);
  const auto r = verify_files({path.string()});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.line, 5u) << r.message;  // line 4 is self-consistent; line 5 no longer chains to it
}

TEST(audit, verify_catches_a_deletion) {
  const auto path = write_log(10);
  auto lines = read_lines(path);
  lines.erase(lines.begin() + 6);
  write_lines(path, lines);
  const auto r = verify_files({path.string()});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.line, 7u) << r.message;
  EXPECT_NE(r.message.find("removed"), std::string::npos);

  const auto fresh = write_log(10);
  auto first = read_lines(fresh);
  first.erase(first.begin());
  write_lines(fresh, first);
  EXPECT_FALSE(verify_files({fresh.string()}).ok);
  EXPECT_TRUE(verify_files({fresh.string()}, true).ok);  // --partial accepts a later start
}

TEST(audit, verify_catches_a_reorder) {
  const auto path = write_log(10);
  auto lines = read_lines(path);
  std::swap(lines[2], lines[3]);
  write_lines(path, lines);
  const auto r = verify_files({path.string()});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.line, 3u) << r.message;
}

TEST(audit, verify_catches_a_truncated_last_line) {
  const auto path = write_log(3);
  std::ofstream(path, std::ios::app) << "{\"seq\":3,\"id\":";
  EXPECT_FALSE(verify_files({path.string()}).ok);
}

TEST(audit, rotation_keeps_the_chain_across_files) {
  const auto path = write_log(50, 2000);
  const auto files = chain_files(path.string());
  ASSERT_GT(files.size(), 3u);
  EXPECT_EQ(files.back(), path.string());
  size_t total = 0;
  for (const auto& f : files) {
    EXPECT_LE(fs::file_size(f), 2000u) << f;
    total += read_lines(f).size();
  }
  EXPECT_EQ(total, 50u);
  auto r = verify_files(files);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.lines, 50u);
  // Missing a middle file breaks the chain; files out of order too.
  auto gap = files;
  gap.erase(gap.begin() + 1);
  EXPECT_FALSE(verify_files(gap).ok);
  auto swapped = files;
  std::swap(swapped[0], swapped[1]);
  EXPECT_FALSE(verify_files(swapped).ok);
}

TEST(audit, reopening_continues_the_chain) {
  const auto path = write_log(5);
  {
    audit_config c;
    c.path = path.string();
    audit_log log(c);
    log.submit(sample(99));
    log.flush();
  }
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[5].rfind("{\"seq\":5,", 0), 0u);
  EXPECT_TRUE(verify_files({path.string()}).ok);
}

TEST(audit, full_queue_drops_after_max_wait_and_counts) {
  const auto dir = temp_dir();
  audit_config c;
  c.path = (dir / "a.jsonl").string();
  c.queue = 1;
  c.max_wait = std::chrono::milliseconds(0);
  audit_log log(c);
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) accepted += log.submit(sample(i)) ? 1 : 0;
  log.flush();
  EXPECT_EQ(static_cast<uint64_t>(accepted) + log.dropped(), 2000u);
  EXPECT_EQ(log.written(), static_cast<uint64_t>(accepted));
  EXPECT_TRUE(verify_files({c.path}).ok);
}

TEST(audit, config_parsing) {
  auto c = parse_audit_config(YAML::Load("{ path: logs/audit.jsonl, max_bytes: 1048576 }"), "/etc/moat");
  EXPECT_EQ(c.path, "/etc/moat/logs/audit.jsonl");
  EXPECT_EQ(c.max_bytes, 1048576u);
  try {
    parse_audit_config(YAML::Load("path: x\nmax_bytes: lots\n"), ".");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("audit.max_bytes (line 2)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_audit_config(YAML::Load("{ max_bytes: 5 }"), "."), std::runtime_error);
  EXPECT_THROW(parse_audit_config(YAML::Load("{ path: x, colour: red }"), "."), std::runtime_error);
}

int verify_cmd(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int rc = cli::audit_command(static_cast<int>(argv.size()), argv.data());
  ::testing::internal::GetCapturedStdout();
  ::testing::internal::GetCapturedStderr();
  return rc;
}

TEST(audit_command, exit_status) {
  const auto path = write_log(30, 1500);
  EXPECT_EQ(verify_cmd({"audit", "verify", path.string()}), 0);  // finds the rotated siblings
  const auto files = chain_files(path.string());
  std::vector<std::string> args = {"audit", "verify"};
  args.insert(args.end(), files.begin(), files.end());
  EXPECT_EQ(verify_cmd(args), 0);
  EXPECT_EQ(verify_cmd({"audit", "verify", files[1]}), 1);            // starts mid-chain
  EXPECT_EQ(verify_cmd({"audit", "verify", "--partial", files[1]}), 0);
  auto lines = read_lines(files[0]);
  lines.erase(lines.begin() + 1);
  write_lines(files[0], lines);
  EXPECT_EQ(verify_cmd({"audit", "verify", path.string()}), 1);
  EXPECT_EQ(verify_cmd({"audit"}), 2);
  EXPECT_EQ(verify_cmd({"audit", "verify"}), 2);
  EXPECT_EQ(verify_cmd({"audit", "verify", "--bogus", "x"}), 2);
}

}  // namespace
}  // namespace moat::audit
