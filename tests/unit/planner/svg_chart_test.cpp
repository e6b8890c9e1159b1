// The SVG cost chart: well-formed, both curves, the break-even marker, escaped text.
#include <gtest/gtest.h>

#include <regex>

#include "cost.h"
#include "svg_chart.h"

namespace moat::planner {
namespace {

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(svg_chart, cost_chart_has_both_curves_and_break_even) {
  cost_result c;
  c.cost_per_month = 10000;
  c.tokens_per_month_max = 1e10;
  c.cloud_usd_per_million = 2;
  c.break_even_tokens_per_month = 5e9;
  const std::string svg = render_svg(cost_chart(c, "70b <int4> & 2 GPUs"));
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_NE(svg.find("break-even 5B tokens/month"), std::string::npos);
  EXPECT_NE(svg.find("70b &lt;int4&gt; &amp; 2 GPUs"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
  // Every point lies inside the 800 x 500 canvas.
  const std::regex pt(R"((-?[0-9.]+),(-?[0-9.]+) )");
  std::size_t points = 0;
  for (std::sregex_iterator it(svg.begin(), svg.end(), pt), end; it != end; ++it, ++points) {
    const double x = std::stod((*it)[1]), y = std::stod((*it)[2]);
    EXPECT_GE(x, 0);
    EXPECT_LE(x, 800);
    EXPECT_GE(y, 0);
    EXPECT_LE(y, 500);
  }
  EXPECT_GT(points, 400u);
}

TEST(svg_chart, local_curve_steps_at_each_copy) {
  cost_result c;
  c.cost_per_month = 1000;
  c.tokens_per_month_max = 1e9;
  c.cloud_usd_per_million = 0;  // no cloud curve
  const chart ch = cost_chart(c, "t");
  ASSERT_EQ(ch.series.size(), 1u);
  double top = 0;
  for (auto [x, y] : ch.series[0].xy) top = std::max(top, y);
  EXPECT_DOUBLE_EQ(top, 10 * 1000);  // up to ten copies at ten times one deployment's capacity
}

}  // namespace
}  // namespace moat::planner
