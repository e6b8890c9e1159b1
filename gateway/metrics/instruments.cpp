#include "metrics/instruments.h"

#include <cmath>
#include <cstdio>

namespace moat::metrics {

histogram::histogram(std::span<const double> bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size()]) {
  for (size_t i = 0; i < bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double seconds) {
  if (!(seconds >= 0)) seconds = 0;  // NaN or a clock hiccup: count it in the first bucket
  // Bounds are few (< 32) and sorted; a linear scan stays in one or two cache lines.
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  if (i < bounds_.size()) buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

double histogram::sum() const {
  return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
}

void histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  uint64_t cumulative = 0;
  auto line = [&](std::string_view suffix, std::string_view le, double value) {
    out.append(name).append(suffix);
    if (!labels.empty() || !le.empty()) {
      out.push_back('{');
      out.append(labels);
      if (!le.empty()) {
        if (!labels.empty()) out.push_back(',');
        out.append("le=\"").append(le).append("\"");
      }
      out.push_back('}');
    }
    out.push_back(' ');
    append_number(out, value);
    out.push_back('\n');
  };
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::string le;
    append_number(le, bounds_[i]);
    line("_bucket", le, static_cast<double>(cumulative));
  }
  // +Inf equals _count by definition; reading count once keeps the two equal in one scrape.
  const uint64_t total = std::max(count(), cumulative);
  line("_bucket", "+Inf", static_cast<double>(total));
  line("_sum", "", sum());
  line("_count", "", static_cast<double>(total));
}

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(value));
    out += buf;
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", value);
    out += buf;
  }
}

void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace moat::metrics
