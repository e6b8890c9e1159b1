// Efficiency factors: this project's benchmark results win over the catalogue defaults.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "factors.h"
#include "hardware.h"

namespace moat::planner {
namespace {

namespace fs = std::filesystem;

class factors_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moat_planner_factors_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name()) / "bench" / "results";
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_.parent_path().parent_path()); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  std::vector<std::string> dirs() const { return {dir_.string()}; }

  fs::path dir_;
  catalogue cat_ = builtin_catalogue();
};

TEST_F(factors_test, defaults_when_no_results) {
  const auto f = find_factors(cat_.find("h100-80g"), dirs());
  EXPECT_DOUBLE_EQ(f.decode, cat_.find("h100-80g").decode_bandwidth_efficiency);
  EXPECT_NE(f.decode_source.find("default factor"), std::string::npos);
  EXPECT_NE(f.prefill_source.find("default factor"), std::string::npos);
  const auto missing = find_factors(cat_.find("h100-80g"), {"/nonexistent/bench/results"});
  EXPECT_NE(missing.decode_source.find("default factor"), std::string::npos);
}

TEST_F(factors_test, engine_json_applies_to_every_device) {
  write("engine.json", R"({"decode_bandwidth_efficiency": 0.62})");
  for (const char* d : {"h100-80g", "cpu-2s"}) {
    const auto f = find_factors(cat_.find(d), dirs());
    EXPECT_DOUBLE_EQ(f.decode, 0.62) << d;
    EXPECT_EQ(f.decode_source, "measured (bench/results/engine.json)") << d;
    EXPECT_NE(f.prefill_source.find("default factor"), std::string::npos) << d;
  }
}

TEST_F(factors_test, the_most_specific_result_wins) {
  write("a.json", R"([{"decode_bandwidth_efficiency": 0.55, "backend": "cpu"},
                      {"decode_bandwidth_efficiency": 0.81, "prefill_compute_efficiency": 0.6, "device": "h100-80g"}])");
  write("b.md", "# engine bench\n\n| metric | value |\n|---|---|\n| decode_bandwidth_efficiency | 0.48 |\n"
                "device: cpu-2s\n");
  EXPECT_DOUBLE_EQ(find_factors(cat_.find("cpu-2s"), dirs()).decode, 0.48);      // device beats kind
  EXPECT_DOUBLE_EQ(find_factors(cat_.find("h100-80g"), dirs()).decode, 0.81);
  EXPECT_DOUBLE_EQ(find_factors(cat_.find("h100-80g"), dirs()).prefill, 0.6);
  EXPECT_EQ(find_factors(cat_.find("h200-141g"), dirs()).decode,                  // neither applies
            cat_.find("h200-141g").decode_bandwidth_efficiency);
}

TEST_F(factors_test, out_of_range_and_broken_files_are_ignored) {
  write("bad.json", R"({"decode_bandwidth_efficiency": 1.7})");
  write("broken.json", "{not json");
  const auto f = find_factors(cat_.find("l40s"), dirs());
  EXPECT_DOUBLE_EQ(f.decode, cat_.find("l40s").decode_bandwidth_efficiency);
}

TEST(factors, search_order) {
  EXPECT_EQ(bench_result_dirs("/x"), std::vector<std::string>{"/x"});
  const auto dirs = bench_result_dirs("");
  ASSERT_GE(dirs.size(), 2u);
  EXPECT_EQ(dirs.front(), "bench/results");
}

}  // namespace
}  // namespace moat::planner
