// A small SVG writer for the cost chart: monthly cost of local serving (a step per extra copy of
// the deployment) and of the cloud API (a line), against monthly token volume, log-log axes.
//
//   std::string svg = moat::planner::cost_chart_svg(result.cost.value(), "llama-3.1-70b on 2 x h100-80g");
//   std::ofstream("cost.svg") << svg;
#pragma once

#include <string>
#include <vector>

#include "cost.h"

namespace moat::planner {

struct chart_series {
  std::string label;
  std::string color;                          // any SVG colour
  std::vector<std::pair<double, double>> xy;  // data coordinates, x and y > 0
};

struct chart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<chart_series> series;
  std::vector<std::pair<double, std::string>> x_markers;  // vertical dashed lines with a note
};

// Renders a log-log line chart, 800 x 500 px.
std::string render_svg(const chart& c);

// The two cost curves and the break-even marker for one plan.
chart cost_chart(const cost_result& cost, const std::string& title);

// Escapes &, <, >, " for SVG text and attributes.
std::string xml_escape(const std::string& s);

}  // namespace moat::planner
