// parse_backend_exposition and append_backend_families: what a backend's /metrics text keeps
// and what it loses, line by line.
#include <gtest/gtest.h>

#include <string>

#include "metrics/exposition.h"

namespace {

using namespace moat::metrics;

const exposition_family* family(const backend_exposition& e, const std::string& name) {
  for (const auto& f : e.families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

TEST(exposition, a_well_formed_text_is_kept_with_the_model_label_first) {
  const auto e = parse_backend_exposition(
      "# HELP moat_gpu_power_watts Board power\n"
      "# TYPE moat_gpu_power_watts gauge\n"
      "moat_gpu_power_watts{device=\"0\"} 301.5\n"
      "moat_gpu_power_watts{device=\"1\",} 1e2 1700000000000\n"
      "# a comment\n\n"
      "# TYPE moat:kv_swap_seconds histogram\n"
      "moat:kv_swap_seconds_bucket{le=\"0.1\"} 1\n"
      "moat:kv_swap_seconds_bucket{le=\"+Inf\"} 2\n"
      "moat:kv_swap_seconds_sum 0.3\n"
      "moat:kv_swap_seconds_count 2\r\n",
      "we\"ird");
  EXPECT_TRUE(e.problems.empty()) << e.problems.front();
  ASSERT_EQ(e.families.size(), 2u);
  const auto* p = family(e, "moat_gpu_power_watts");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->type, "gauge");
  EXPECT_EQ(p->help, "Board power");
  ASSERT_EQ(p->samples.size(), 2u);
  EXPECT_EQ(p->samples[0], "moat_gpu_power_watts{model_name=\"we\\\"ird\",device=\"0\"} 301.5");
  EXPECT_EQ(p->samples[1], "moat_gpu_power_watts{model_name=\"we\\\"ird\",device=\"1\"} 1e2 1700000000000");
  const auto* h = family(e, "moat:kv_swap_seconds");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->samples.size(), 4u);
  EXPECT_EQ(h->samples[3], "moat:kv_swap_seconds_count{model_name=\"we\\\"ird\"} 2");
}

TEST(exposition, each_defect_costs_only_its_line) {
  const auto e = parse_backend_exposition(
      "gpu_loose 1\n"                                 // 1: no family declared
      "# TYPE gpu_temp gauge\n"                       // 2: not a moat family
      "gpu_temp 3\n"                                  // 3: its sample goes with it
      "# TYPE moat_x gauge\n"                         // 4
      "moat_x{a=\"1\"} 1\n"                           // 5: kept
      "moat_x{a=\"1\"} 2\n"                           // 6: repeated series
      "moat_x{a=\"2} 1\n"                             // 7: unterminated value
      "moat_x{a=\"\\q\"} 1\n"                         // 8: bad escape
      "moat_x{model_name=\"y\"} 1\n"                  // 9: the host's label
      "moat_x{a=\"3\"} one\n"                         // 10: not a number
      "moat_x{a=\"4\"} nan(0x1)\n"                    // 11: strtod reads it; the format does not
      "moat_x{a=\"5\"}\n"                             // 12: no value
      "moat_x_total 1\n"                              // 13: not a gauge's series name
      "# TYPE moat_x gauge\n"                         // 14: declared twice
      "# TYPE moat_h histogram\n"                     // 15
      "moat_h 1\n"                                    // 16: a histogram has no bare series
      "# TYPE moat_bad_type sometimes\n"              // 17: unknown type
      "moat_bad_type 1\n"                             // 18
      "# HELP moat_no_type help only\n"               // 19: never typed
      "# TYPE moat_y gauge\n"                         // 20
      "moat_y{a=\"1\",a=\"2\"} 1\n",                    // 21: a label twice
      "m");
  const auto* x = family(e, "moat_x");
  ASSERT_NE(x, nullptr);
  ASSERT_EQ(x->samples.size(), 1u);
  EXPECT_EQ(x->samples[0], "moat_x{model_name=\"m\",a=\"1\"} 1");
  EXPECT_EQ(family(e, "gpu_temp"), nullptr);
  EXPECT_EQ(family(e, "moat_bad_type"), nullptr);
  EXPECT_EQ(family(e, "moat_no_type"), nullptr);
  ASSERT_NE(family(e, "moat_y"), nullptr);
  EXPECT_TRUE(family(e, "moat_y")->samples.empty());
  ASSERT_NE(family(e, "moat_h"), nullptr);
  EXPECT_TRUE(family(e, "moat_h")->samples.empty());
  // Reported with line numbers, capped, and never quoting the dropped values.
  ASSERT_FALSE(e.problems.empty());
  EXPECT_LE(e.problems.size(), 8u);
  EXPECT_EQ(e.problems[0].rfind("line 1: ", 0), 0u) << e.problems[0];
  for (const auto& p : e.problems) EXPECT_EQ(p.find("one"), std::string::npos) << p;
}

TEST(exposition, reserved_families_are_refused) {
  const auto e = parse_backend_exposition("# TYPE moat_build_info gauge\nmoat_build_info 1\n", "m",
                                          [](std::string_view n) { return n == "moat_build_info"; });
  EXPECT_TRUE(e.families.empty());
  ASSERT_FALSE(e.problems.empty());
  EXPECT_NE(e.problems[0].find("exported by the gateway"), std::string::npos);
}

TEST(exposition, oversized_text_is_dropped_whole) {
  std::string text = "# TYPE moat_x gauge\nmoat_x 1\n";
  text.append(backend_exposition_max_bytes, '#');
  const auto e = parse_backend_exposition(text, "m");
  EXPECT_TRUE(e.families.empty());
  EXPECT_EQ(e.problems.size(), 1u);
}

TEST(exposition, garbage_never_throws) {
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 7919) % 256));
  const auto e = parse_backend_exposition(junk, "m");
  EXPECT_TRUE(e.families.empty());
}

TEST(exposition, merging_declares_each_family_once_and_skips_type_clashes) {
  const auto a = parse_backend_exposition("# HELP moat_t T\n# TYPE moat_t gauge\nmoat_t 1\n", "a");
  const auto b = parse_backend_exposition("# TYPE moat_t gauge\nmoat_t 2\n# TYPE moat_u counter\nmoat_u 5\n", "b");
  const auto c = parse_backend_exposition("# TYPE moat_t counter\nmoat_t 3\n", "c");
  const backend_exposition* parts[] = {&a, &b, &c};
  std::string out;
  EXPECT_EQ(append_backend_families(out, parts), 1u);
  EXPECT_EQ(out,
            "# HELP moat_t T\n# TYPE moat_t gauge\n"
            "moat_t{model_name=\"a\"} 1\nmoat_t{model_name=\"b\"} 2\n"
            "# TYPE moat_u counter\nmoat_u{model_name=\"b\"} 5\n");
}

}  // namespace
