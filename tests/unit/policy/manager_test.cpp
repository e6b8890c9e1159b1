#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include "policy/policy_manager.h"
#include "policy_test_util.h"

namespace moat::policy {
namespace {

using namespace std::chrono_literals;

struct fixture {
  std::filesystem::path dir = testing::temp_dir();
  std::string config() const { return (dir / "moat.yaml").string(); }
};

bool eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 1000; ++i) {  // up to 10 s: CI machines can be slow
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::string redacted(const policy_manager& m, const std::string& text) {
  auto ctx = testing::chat(text);
  m.current()->check_request(ctx);
  return ctx.messages[0].content;
}

TEST(policy_manager, reload_keeps_the_old_set_on_a_compile_error) {
  fixture f;
  testing::write(f.config(), "policies:\n  - { path: p.lua }\n");
  testing::write(f.dir / "p.lua", "moat.rule{ name = 'cat', pattern = 'cat' }\n");
  auto m = policy_manager::from_config_file(f.config());
  EXPECT_EQ(redacted(*m, "a cat"), "a [CAT]");
  const auto before = m->current();

  testing::write(f.dir / "p.lua", "moat.rule{ name = 'cat', pattern = '(' }\n");
  std::string why;
  EXPECT_FALSE(m->reload(&why));
  EXPECT_NE(why.find("bad pattern"), std::string::npos) << why;
  EXPECT_EQ(m->current(), before);  // still the old set
  EXPECT_EQ(redacted(*m, "a cat"), "a [CAT]");
  EXPECT_EQ(m->last_error(), why);

  testing::write(f.dir / "p.lua", "moat.rule{ name = 'dog', pattern = 'dog' }\n");
  EXPECT_TRUE(m->reload());
  EXPECT_EQ(redacted(*m, "a cat and a dog"), "a cat and a [DOG]");
  EXPECT_EQ(m->generation(), 2u);
}

TEST(policy_manager, watcher_reloads_when_a_file_changes) {
  fixture f;
  testing::write(f.config(), "policies:\n  - { path: p.lua }\n");
  testing::write(f.dir / "p.lua", "moat.rule{ name = 'cat', pattern = 'cat' }\n");
  auto m = policy_manager::from_config_file(f.config());
  m->start_watching(20ms);
  testing::write(f.dir / "p.lua", "moat.rule{ name = 'cow', pattern = 'cow' }\n-- longer file\n");
  EXPECT_TRUE(eventually([&] { return redacted(*m, "cow") == "[COW]"; }));
  // The config itself is watched too.
  testing::write(f.config(), "policies:\n  - { rules: [ { name: hen, pattern: hen } ] }\n");
  EXPECT_TRUE(eventually([&] { return redacted(*m, "hen") == "[HEN]"; }));
  // A broken edit is refused and the set in force stays.
  testing::write(f.config(), "policies:\n  - { rules: [ { name: hen, pattern: 'hen(' } ] }\n");
  EXPECT_TRUE(eventually([&] { return !m->last_error().empty(); }));
  EXPECT_EQ(redacted(*m, "hen"), "[HEN]");
  m->stop_watching();
}

TEST(policy_manager, sighup_reloads) {
  fixture f;
  testing::write(f.config(), "policies:\n  - { path: p.lua }\n");
  testing::write(f.dir / "p.lua", "moat.rule{ name = 'cat', pattern = 'cat' }\n");
  auto m = policy_manager::from_config_file(f.config());
  policy_manager::install_sighup_handler();
  m->start_watching(20ms);
  const auto gen = m->generation();
  std::raise(SIGHUP);
  EXPECT_TRUE(eventually([&] { return m->generation() > gen; }));
}

TEST(policy_manager, requests_in_flight_keep_their_set) {
  fixture f;
  testing::write(f.config(), "policies:\n  - { path: p.lua }\n");
  testing::write(f.dir / "p.lua", "moat.rule{ name = 'cat', pattern = 'cat' }\nfunction on_request(ctx) ctx:tag('v', '1') end\n");
  auto m = policy_manager::from_config_file(f.config());
  auto held = m->current();
  testing::write(f.dir / "p.lua", "function on_request(ctx) ctx:tag('v', '2') end\n");
  ASSERT_TRUE(m->reload());
  auto a = testing::chat("cat");
  auto da = held->check_request(a);
  auto b = testing::chat("cat");
  auto db = m->current()->check_request(b);
  EXPECT_EQ(a.messages[0].content, "[CAT]");
  EXPECT_EQ(da.tags[0].second, "1");
  EXPECT_EQ(b.messages[0].content, "cat");
  EXPECT_EQ(db.tags[0].second, "2");
}

TEST(policy_manager, threads_get_their_own_states) {
  auto set = testing::load_set("- { path: c.lua }\n", {{"c.lua", "n = 0\nfunction on_request(ctx) n = n + 1 ctx:tag('n', n) end\n"}});
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 1; i <= 200; ++i) {
        auto ctx = testing::chat("x");
        auto d = set->check_request(ctx);
        if (d.tags.size() != 1 || d.tags[0].second != std::to_string(i)) ++bad;  // one state per thread
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace moat::policy
