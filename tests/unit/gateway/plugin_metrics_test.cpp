// The plugin ABI's optional `metrics` slot end to end on the host side: the fake plugin (a real
// shared library) hands text to backend::live(), the registry renders it into /metrics with the
// model label, each family once, and drops what is malformed; a failing or oversized slot and a
// plugin built before the slot existed (smaller struct_size) leave /metrics intact. The parser
// itself is tested line by line in exposition_test.cpp.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "host/backend.h"

namespace {

using namespace moat;

const std::filesystem::path plugin_dir = FAKE_PLUGIN_DIR;
const std::filesystem::path fake_path = plugin_dir / "libmoat_fake.so";
const std::filesystem::path old_path = plugin_dir / "libmoat_fake_oldtable.so";

int metrics_calls(const std::filesystem::path& lib) {
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!h) return -1;
  auto fn = reinterpret_cast<int (*)()>(dlsym(h, "fake_plugin_metrics_calls"));
  const int n = fn ? fn() : -1;
  dlclose(h);
  return n;
}

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

size_t count_lines_starting(const std::string& text, const std::string& prefix) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) n += l.rfind(prefix, 0) == 0;
  return n;
}

class plugin_metrics : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(fake_path) || !std::filesystem::exists(old_path)) {
      GTEST_SKIP() << "fake plugins not built in " << plugin_dir;
    }
  }

  std::unique_ptr<host::backend> make(const std::string& name, const std::string& options,
                                      const std::filesystem::path& lib = fake_path) {
    config::model_config m;
    m.name = name;
    m.backend = "fake";
    m.options_json = options;
    m.max_queue = 16;
    m.where = "test.yaml:3: models[0]";
    auto b = std::make_unique<host::backend>(m, host::load_plugin(lib), "/tmp", registry_, std::chrono::seconds(5));
    b->create();
    return b;
  }

  std::string scrape(std::initializer_list<const host::backend*> backends) {
    std::vector<metrics::model_live> live;
    for (const auto* b : backends) live.push_back(b->live());
    return registry_.render(live);
  }

  metrics::registry registry_{{"a", "b"}, "t", "t"};
};

TEST_F(plugin_metrics, the_slot_is_read_and_its_families_get_the_model_label) {
  auto a = make("a", "{}");
  ASSERT_NE(a->plugin().api().metrics, nullptr);
  const int before = metrics_calls(fake_path);
  const std::string text = scrape({a.get()});
  EXPECT_EQ(metrics_calls(fake_path), before + 1);
  // Split across three on_text pieces, one of them in the middle of a TYPE line.
  EXPECT_TRUE(has_line(text, "# HELP moat_fake_temperature_celsius Fake device temperature")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE moat_fake_temperature_celsius gauge"));
  EXPECT_TRUE(has_line(text, "moat_fake_temperature_celsius{model_name=\"a\",device=\"0\"} 61"));
  EXPECT_TRUE(has_line(text, "moat_fake_temperature_celsius{model_name=\"a\",device=\"1\"} 64.5"));
  EXPECT_TRUE(has_line(text, "# TYPE moat:fake_swaps_total counter"));
  EXPECT_TRUE(has_line(text, "moat:fake_swaps_total{model_name=\"a\"} 3"));
  // The gateway's own families are still there.
  EXPECT_TRUE(has_line(text, "moat:num_requests_running{model_name=\"a\"} 0"));
}

TEST_F(plugin_metrics, two_models_share_one_declaration_per_family) {
  auto a = make("a", "{}");
  auto b = make("b", "{}");
  const std::string text = scrape({a.get(), b.get()});
  EXPECT_EQ(count_lines_starting(text, "# TYPE moat_fake_temperature_celsius "), 1u) << text;
  EXPECT_EQ(count_lines_starting(text, "# HELP moat_fake_temperature_celsius "), 1u);
  EXPECT_TRUE(has_line(text, "moat_fake_temperature_celsius{model_name=\"a\",device=\"0\"} 61"));
  EXPECT_TRUE(has_line(text, "moat_fake_temperature_celsius{model_name=\"b\",device=\"0\"} 61"));
  // Samples of one family are contiguous, right after its TYPE line.
  const size_t type_at = text.find("# TYPE moat_fake_temperature_celsius gauge\n");
  ASSERT_NE(type_at, std::string::npos);
  const std::string block = text.substr(type_at, text.find("# HELP moat:fake_swaps_total") - type_at);
  EXPECT_EQ(count_lines_starting(block, "moat_fake_temperature_celsius{"), 4u) << block;
}

TEST_F(plugin_metrics, malformed_lines_are_dropped_and_the_rest_kept) {
  auto a = make("a", "{\"metrics_junk\":true}");
  const std::string text = scrape({a.get()});
  EXPECT_TRUE(has_line(text, "moat_fake_temperature_celsius{model_name=\"a\",device=\"0\"} 61")) << text;
  EXPECT_TRUE(has_line(text, "moat_fake_broken{model_name=\"a\",device=\"9\"} 2"));
  EXPECT_EQ(text.find("other_family"), std::string::npos);
  EXPECT_EQ(text.find("99"), std::string::npos) << "the gateway's family was redeclared";
  EXPECT_EQ(count_lines_starting(text, "# TYPE moat:num_requests_running "), 1u);
  EXPECT_EQ(count_lines_starting(text, "# TYPE moat_fake_temperature_celsius "), 1u);
  EXPECT_EQ(text.find("device=\"2\""), std::string::npos);
  EXPECT_EQ(text.find("spoof"), std::string::npos);
  EXPECT_EQ(text.find("NaNa"), std::string::npos);
  EXPECT_FALSE(has_line(text, "moat_fake_broken{model_name=\"a\",device=\"9\"} 3"));

  // Every sample line lies under the family declared last (the exposition format's rule).
  std::istringstream in(text);
  std::string declared;
  for (std::string l; std::getline(in, l);) {
    ASSERT_FALSE(l.empty());
    if (l.rfind("# TYPE ", 0) == 0) {
      declared = l.substr(7, l.find(' ', 7) - 7);
      continue;
    }
    if (l[0] == '#') continue;
    EXPECT_EQ(l.rfind(declared, 0), 0u) << l << " not under " << declared;
  }
}

TEST_F(plugin_metrics, a_failing_slot_leaves_metrics_whole) {
  auto a = make("a", "{\"metrics_fail\":true}");
  const auto live = a->live();
  EXPECT_EQ(live.backend_families, nullptr);
  const std::string text = scrape({a.get()});
  EXPECT_EQ(text.find("moat_fake"), std::string::npos) << "text from a failed call was kept";
  EXPECT_TRUE(has_line(text, "moat_build_info{version=\"t\",commit=\"t\"} 1"));
}

TEST_F(plugin_metrics, oversized_text_is_dropped_whole) {
  auto a = make("a", "{\"metrics_huge\":true}");
  EXPECT_EQ(a->live().backend_families, nullptr);
  const std::string text = scrape({a.get()});
  EXPECT_LT(text.size(), 64u * 1024) << "the plugin's text reached /metrics";
}

TEST_F(plugin_metrics, a_plugin_built_before_the_slot_is_never_asked) {
  auto b = make("b", "{}", old_path);
  EXPECT_EQ(b->plugin().api().metrics, nullptr) << "slot read past the plugin's struct_size";
  EXPECT_NE(b->plugin().api().detokenize, nullptr);  // the slots it does declare are kept
  const int before = metrics_calls(old_path);
  ASSERT_GE(before, 0);
  const std::string text = scrape({b.get()});
  EXPECT_EQ(metrics_calls(old_path), before);
  EXPECT_EQ(text.find("moat_fake"), std::string::npos);
  EXPECT_TRUE(has_line(text, "moat:num_requests_running{model_name=\"b\"} 0"));
}

}  // namespace
