// Efficiency factors: the fraction of peak memory bandwidth a decode step achieves, and of peak
// compute a prefill achieves. This project's own benchmark results win over the catalogue's
// defaults, and the plan says which it used.
//
//   auto f = moat::planner::find_factors(dev, moat::planner::bench_result_dirs(""));
//   f.decode_source;   // "bench/results/engine.json" or "default factor (config/hardware.yaml)"
//
// A result file is bench/results/*.json holding an object (or an array of objects) such as
//   {"decode_bandwidth_efficiency": 0.62, "prefill_compute_efficiency": 0.41,
//    "device": "cpu-2s"}
// or bench/results/*.md with lines "decode_bandwidth_efficiency: 0.62" (and optionally
// "device: NAME" / "kind: cpu|gpu" / "backend: cpu|cuda"). A result naming a device applies
// only to it, one naming a kind or backend to that kind, one naming neither to every device;
// the most specific wins.
#pragma once

#include <string>
#include <vector>

#include "hardware.h"

namespace moat::planner {

struct efficiency_factors {
  double decode = 0;
  double prefill = 0;
  std::string decode_source;
  std::string prefill_source;
};

// The folders searched, in order: `explicit_dir` when not empty (only it), else ./bench/results,
// then bench/results beside the binary's source tree (../../bench/results from build/bin/moat),
// then the source tree this binary was built from.
std::vector<std::string> bench_result_dirs(const std::string& explicit_dir);

efficiency_factors find_factors(const device& d, const std::vector<std::string>& dirs);

}  // namespace moat::planner
