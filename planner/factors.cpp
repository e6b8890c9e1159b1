#include "factors.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <regex>

namespace moat::planner {

namespace fs = std::filesystem;

namespace {

// One benchmark result: the factors it measured and what it was measured on.
struct result {
  std::optional<double> decode;
  std::optional<double> prefill;
  std::string device;  // empty = any
  std::string kind;    // "cpu", "gpu" or empty = any
  std::string file;
};

std::string kind_of(std::string_view backend_or_kind) {
  if (backend_or_kind == "cpu") return "cpu";
  if (backend_or_kind == "gpu" || backend_or_kind == "cuda") return "gpu";
  return std::string(backend_or_kind);
}

std::optional<double> valid_factor(double v, const std::string& file, const char* key) {
  if (v > 0 && v <= 1) return v;
  spdlog::warn("{}: {} = {} is outside (0, 1]; ignored", file, key, v);
  return std::nullopt;
}

void read_json_object(simdjson::dom::object obj, const std::string& file, std::vector<result>& out) {
  result r;
  r.file = file;
  double v = 0;
  if (obj["decode_bandwidth_efficiency"].get_double().get(v) == simdjson::SUCCESS)
    r.decode = valid_factor(v, file, "decode_bandwidth_efficiency");
  if (obj["prefill_compute_efficiency"].get_double().get(v) == simdjson::SUCCESS)
    r.prefill = valid_factor(v, file, "prefill_compute_efficiency");
  std::string_view s;
  if (obj["device"].get_string().get(s) == simdjson::SUCCESS) r.device = s;
  if (obj["kind"].get_string().get(s) == simdjson::SUCCESS) r.kind = kind_of(s);
  if (obj["backend"].get_string().get(s) == simdjson::SUCCESS) r.kind = kind_of(s);
  if (r.decode || r.prefill) out.push_back(r);
}

void read_json(const fs::path& path, std::vector<result>& out) {
  simdjson::dom::parser parser;
  simdjson::padded_string text;
  if (simdjson::padded_string::load(path.string()).get(text) != simdjson::SUCCESS) return;
  simdjson::dom::element doc;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS) {
    spdlog::warn("{}: not valid JSON; ignored", path.string());
    return;
  }
  simdjson::dom::object obj;
  simdjson::dom::array arr;
  if (doc.get_object().get(obj) == simdjson::SUCCESS) {
    read_json_object(obj, path.string(), out);
  } else if (doc.get_array().get(arr) == simdjson::SUCCESS) {
    for (auto e : arr)
      if (e.get_object().get(obj) == simdjson::SUCCESS) read_json_object(obj, path.string(), out);
  }
}

void read_markdown(const fs::path& path, std::vector<result>& out) {
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "key: value" or a table row "| key | value |", backticks allowed around the key.
  static const std::regex number_re(
      R"(`?(decode_bandwidth_efficiency|prefill_compute_efficiency)`?\s*[:|=]\s*([0-9]*\.?[0-9]+))");
  static const std::regex label_re(R"(`?(device|kind|backend)`?\s*[:|=]\s*`?([A-Za-z0-9_.-]+))");
  result r;
  r.file = path.string();
  for (std::sregex_iterator it(text.begin(), text.end(), number_re), end; it != end; ++it) {
    const double v = std::stod((*it)[2].str());
    if ((*it)[1] == "decode_bandwidth_efficiency")
      r.decode = valid_factor(v, r.file, "decode_bandwidth_efficiency");
    else
      r.prefill = valid_factor(v, r.file, "prefill_compute_efficiency");
  }
  for (std::sregex_iterator it(text.begin(), text.end(), label_re), end; it != end; ++it) {
    if ((*it)[1] == "device") r.device = (*it)[2].str();
    else r.kind = kind_of((*it)[2].str());
  }
  if (r.decode || r.prefill) out.push_back(r);
}

// 2 = names this device, 1 = names its kind, 0 = names nothing, -1 = another device or kind.
int specificity(const result& r, const device& d) {
  if (!r.device.empty()) return r.device == d.name ? 2 : -1;
  if (!r.kind.empty()) return r.kind == (d.is_cpu ? "cpu" : "gpu") ? 1 : -1;
  return 0;
}

std::string shown_path(const std::string& file) {
  // "…/bench/results/engine.json" reads as "bench/results/engine.json".
  const auto pos = file.rfind("bench/results/");
  return pos == std::string::npos ? file : file.substr(pos);
}

}  // namespace

std::vector<std::string> bench_result_dirs(const std::string& explicit_dir) {
  if (!explicit_dir.empty()) return {explicit_dir};
  std::vector<std::string> dirs{"bench/results"};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back((exe.parent_path() / "../../bench/results").lexically_normal().string());
#ifdef MOAT_PLANNER_SOURCE_DIR
  dirs.push_back(std::string(MOAT_PLANNER_SOURCE_DIR) + "/bench/results");
#endif
  return dirs;
}

efficiency_factors find_factors(const device& d, const std::vector<std::string>& dirs) {
  efficiency_factors f;
  f.decode = d.decode_bandwidth_efficiency;
  f.prefill = d.prefill_compute_efficiency;
  f.decode_source = f.prefill_source = "default factor (config/hardware.yaml)";

  std::vector<result> results;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());  // a stable choice when two files tie
    for (const auto& p : files) {
      if (p.extension() == ".json") read_json(p, results);
      else if (p.extension() == ".md") read_markdown(p, results);
    }
    break;  // the first folder that exists is this project's results
  }
  int best_decode = -1, best_prefill = -1;
  for (const auto& r : results) {
    const int s = specificity(r, d);
    if (s < 0) continue;
    if (r.decode && s > best_decode) {
      best_decode = s;
      f.decode = *r.decode;
      f.decode_source = fmt::format("measured ({})", shown_path(r.file));
    }
    if (r.prefill && s > best_prefill) {
      best_prefill = s;
      f.prefill = *r.prefill;
      f.prefill_source = fmt::format("measured ({})", shown_path(r.file));
    }
  }
  return f;
}

}  // namespace moat::planner
