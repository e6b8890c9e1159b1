// Sandbox escapes: each must fail closed (verdict fail, 500) and the next call must work.
#include <gtest/gtest.h>

#include "policy/policy.h"
#include "policy_test_util.h"

namespace moat::policy {
namespace {

using testing::chat;
using testing::load_set;

std::shared_ptr<const policy_set> script_set(const std::string& body) {
  std::string code = "function on_request(ctx)\n  if ctx.messages[1].content == 'attack' then\n";
  code += body;
  code += "\n  end\n  ctx:tag('ok', 'yes')\nend\n";
  return load_set("- { path: s.lua, limits: { memory: 8MiB, instructions: 2000000 } }\n", {{"s.lua", code}});
}

void expect_fails_closed_then_recovers(const std::string& body) {
  auto set = script_set(body);
  auto attack = chat("attack");
  auto d = set->check_request(attack);
  EXPECT_EQ(d.outcome, verdict::fail) << body;
  EXPECT_EQ(d.http_status(), 500);
  EXPECT_FALSE(d.reason.empty());
  auto fine = chat("hello");
  auto ok = set->check_request(fine);
  EXPECT_EQ(ok.outcome, verdict::allow) << body << ": " << ok.reason;
  ASSERT_EQ(ok.tags.size(), 1u) << body;
}

TEST(sandbox, forbidden_libraries_are_absent) {
  for (const char* body : {"io.open('/etc/passwd')", "os.execute('true')", "os.exit(1)", "package.loadlib('x','y')",
                           "require('io')", "debug.sethook()", "dofile('/etc/passwd')", "loadfile('/etc/passwd')",
                           "load('return 1')", "collectgarbage('stop')", "string.dump(print)", "print('x')"}) {
    expect_fails_closed_then_recovers(body);
  }
}

TEST(sandbox, endless_loop_hits_the_instruction_budget) {
  expect_fails_closed_then_recovers("while true do end");
}

TEST(sandbox, pcall_cannot_swallow_the_budget) {
  expect_fails_closed_then_recovers("while true do pcall(function() while true do end end) end");
}

TEST(sandbox, memory_bomb_hits_the_cap) {
  expect_fails_closed_then_recovers("local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1024) .. i end");
}

TEST(sandbox, string_rep_of_a_huge_count) {
  expect_fails_closed_then_recovers("local s = string.rep('x', 1e12)");
  expect_fails_closed_then_recovers("local s = ('abc'):rep(2^40, ',')");
}

TEST(sandbox, work_in_c_counts_against_the_budget) {
  // Few VM instructions, much work: each round allocates or scans megabytes.
  expect_fails_closed_then_recovers("for i = 1, 1e7 do local s = string.rep('x', 4e6) end");
  expect_fails_closed_then_recovers(
      "local big = string.rep('ab', 2e6) for i = 1, 1e7 do moat.re.gsub(big, 'a', 'c') end");
  expect_fails_closed_then_recovers("local s = 'x' for i = 1, 1e7 do local t = s:rep(1e6) .. s:rep(1e6) end");
}

TEST(sandbox, metatable_tricks) {
  expect_fails_closed_then_recovers("getmetatable('').__index = function() return 'pwned' end");
  expect_fails_closed_then_recovers("setmetatable({}, { __gc = function() while true do end end })");
  expect_fails_closed_then_recovers("setmetatable('', {})");
  expect_fails_closed_then_recovers("local t = setmetatable({}, { __index = function(t, k) return t[k] end }) local x = t.x");
}

TEST(sandbox, coroutine_tricks) {
  expect_fails_closed_then_recovers("local co = coroutine.wrap(function() while true do end end) co()");
  expect_fails_closed_then_recovers(
      "local co = coroutine.create(function() while true do coroutine.yield() end end) while true do coroutine.resume(co) end");
}

TEST(sandbox, lua_patterns_are_disabled_for_linear_time) {
  expect_fails_closed_then_recovers("local a = string.find(ctx.messages[1].content, '(.-)%s*$')");
}

TEST(sandbox, binary_chunks_cannot_load) {
  // No load at all; and the file itself is loaded as text only.
  auto dir = testing::temp_dir();
  testing::write(dir / "b.lua", std::string("\x1bLua\x54\x00", 6));
  EXPECT_THROW(policy_set::load(YAML::Load("- { path: b.lua }"), dir.string()), policy_error);
}

TEST(sandbox, script_errors_fail_closed) {
  expect_fails_closed_then_recovers("error('boom')");
  expect_fails_closed_then_recovers("ctx.messages = 5");
  expect_fails_closed_then_recovers("ctx.messages[1].content = {}");
  expect_fails_closed_then_recovers("moat.re.find('x', '(')");
}

TEST(sandbox, globals_do_not_leak_between_failures) {
  // A failed call discards the state: a global set before the failure is gone.
  auto set = load_set("- { path: g.lua }\n", {{"g.lua", R"(
function on_request(ctx)
  ctx:tag("seen", tostring(seen))
  seen = true
  if ctx.messages[1].content == "attack" then error("x") end
end
)"}});
  auto a = chat("attack");
  EXPECT_EQ(set->check_request(a).outcome, verdict::fail);
  auto b = chat("hi");
  auto d = set->check_request(b);
  ASSERT_EQ(d.tags.size(), 1u);
  EXPECT_EQ(d.tags[0].second, "nil");
}

TEST(sandbox, load_time_failures_are_reported) {
  EXPECT_THROW(load_set("- { path: x.lua }\n", {{"x.lua", "function ("}}), policy_error);
  EXPECT_THROW(load_set("- { path: x.lua }\n", {{"x.lua", "while true do end"}}), policy_error);
  try {
    load_set("- { path: x.lua }\n", {{"x.lua", "\n\nerror('nope')"}});
  } catch (const policy_error& e) {
    EXPECT_NE(std::string(e.what()).find("x.lua:3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moat::policy
