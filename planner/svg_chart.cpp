#include "svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace moat::planner {

namespace {

constexpr double width = 800, height = 500;
constexpr double left = 90, right = 30, top = 50, bottom = 70;

// "1e9" style tick labels read badly; these read as an operator would say them.
std::string short_number(double v, const char* unit) {
  const char* suffixes[] = {"", "k", "M", "B", "T", "P"};
  int i = 0;
  while (v >= 1000 && i < 5) {
    v /= 1000;
    ++i;
  }
  return fmt::format("{}{:.3g}{}", unit, v, suffixes[i]);
}

struct axis {
  double lo = 0, hi = 0;  // log10 of the range, whole decades
  double to_px(double v, double px_lo, double px_hi) const {
    return px_lo + (std::log10(v) - lo) / (hi - lo) * (px_hi - px_lo);
  }
};

axis decades(double min_v, double max_v) {
  axis a;
  a.lo = std::floor(std::log10(min_v));
  a.hi = std::ceil(std::log10(max_v));
  if (a.hi <= a.lo) a.hi = a.lo + 1;
  return a;
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const chart& c) {
  double xmin = std::numeric_limits<double>::max(), xmax = 0, ymin = xmin, ymax = 0;
  for (const auto& s : c.series)
    for (auto [x, y] : s.xy) {
      if (x <= 0 || y <= 0) continue;
      xmin = std::min(xmin, x), xmax = std::max(xmax, x);
      ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
  if (xmax <= 0) xmin = 1, xmax = 10, ymin = 1, ymax = 10;
  const axis ax = decades(xmin, xmax), ay = decades(ymin, ymax);
  const double x0 = left, x1 = width - right, y0 = height - bottom, y1 = top;
  auto px = [&](double x) { return ax.to_px(x, x0, x1); };
  auto py = [&](double y) { return ay.to_px(y, y0, y1); };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">{3}</text>\n",
      width, height, width / 2, xml_escape(c.title));
  // Grid and ticks, one per decade.
  for (double e = ax.lo; e <= ax.hi; ++e) {
    const double x = px(std::pow(10.0, e));
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>\n"
                       "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
                       x, y0, y1, y0 + 18, short_number(std::pow(10.0, e), ""));
  }
  for (double e = ay.lo; e <= ay.hi; ++e) {
    const double y = py(std::pow(10.0, e));
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>\n"
                       "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
                       x0, y, x1, x0 - 8, y + 4, short_number(std::pow(10.0, e), "$"));
  }
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", x0, y1,
                     x1 - x0, y0 - y1);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (x0 + x1) / 2, height - 25,
                     xml_escape(c.x_label));
  svg += fmt::format("<text x=\"20\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 20 {0})\">{1}</text>\n",
                     (y0 + y1) / 2, xml_escape(c.y_label));
  // Marker notes sit at the foot of the plot, one line each so that close markers do not collide;
  // a note near the right edge runs leftwards from its line.
  double note_y = y0 - 8 - 14.0 * static_cast<double>(c.x_markers.size() - 1);
  for (const auto& [x, note] : c.x_markers) {
    if (x <= 0) continue;
    const double mx = px(x);
    const bool leftwards = mx > (x0 + x1) / 2;
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#555\" "
                       "stroke-dasharray=\"5,4\"/>\n<text x=\"{3:.1f}\" y=\"{4}\" font-size=\"11\" "
                       "text-anchor=\"{5}\">{6}</text>\n",
                       mx, y0, y1, leftwards ? mx - 4 : mx + 4, note_y, leftwards ? "end" : "start", xml_escape(note));
    note_y += 14;
  }
  double legend_y = y1 + 12;
  for (const auto& s : c.series) {
    std::string points;
    for (auto [x, y] : s.xy)
      if (x > 0 && y > 0) points += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                       xml_escape(s.color), points);
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"/>"
                       "<text x=\"{4}\" y=\"{5}\">{6}</text>\n",
                       x0 + 12, legend_y + 10, x0 + 36, xml_escape(s.color), x0 + 42, legend_y + 14,
                       xml_escape(s.label));
    legend_y += 18;
  }
  svg += "</svg>\n";
  return svg;
}

chart cost_chart(const cost_result& cost, const std::string& title) {
  chart c;
  c.title = title;
  c.x_label = "tokens per month (input + output)";
  c.y_label = "USD per month";
  // From a thousandth of one deployment's capacity to ten times it (or around break-even).
  double hi = cost.tokens_per_month_max > 0 ? cost.tokens_per_month_max * 10 : 1e12;
  if (cost.cloud_usd_per_million > 0)
    hi = std::max(hi, cost.cost_per_month / cost.cloud_usd_per_million * 1e6 * 3);
  const double lo = hi / 1e5;
  chart_series local{fmt::format("local: ${:.0f}/month per deployment, one more per {} tokens/month",
                                 cost.cost_per_month, short_number(cost.tokens_per_month_max, "")),
                     "#1f77b4", {}};
  chart_series cloud{fmt::format("cloud API: ${:.2f} per million tokens", cost.cloud_usd_per_million), "#d62728", {}};
  const int samples = 400;
  double prev = -1;
  for (int i = 0; i <= samples; ++i) {
    const double v = lo * std::pow(hi / lo, static_cast<double>(i) / samples);
    const double y = local_cost_at(cost, v);
    if (prev > 0 && y != prev) local.xy.emplace_back(v, prev);  // draw the step as a riser
    local.xy.emplace_back(v, y);
    prev = y;
    if (cost.cloud_usd_per_million > 0) cloud.xy.emplace_back(v, v / 1e6 * cost.cloud_usd_per_million);
  }
  c.series.push_back(std::move(local));
  if (!cloud.xy.empty()) c.series.push_back(std::move(cloud));
  if (cost.break_even_tokens_per_month)
    c.x_markers.emplace_back(*cost.break_even_tokens_per_month,
                             "break-even " + short_number(*cost.break_even_tokens_per_month, "") + " tokens/month");
  if (cost.tokens_per_month_max > 0)
    c.x_markers.emplace_back(cost.tokens_per_month_max,
                             "one deployment full: " + short_number(cost.tokens_per_month_max, ""));
  return c;
}

}  // namespace moat::planner
