// `moat plan`: what hardware a model needs, how fast it runs, and when it beats a cloud API.
// Parses the flags, builds the plan (plan.h) and prints it as a table or --json; --chart writes
// the cost curves as SVG. Every input error is a plan_error: message on stderr, exit status 2.
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "factors.h"
#include "hardware.h"
#include "plan.h"
#include "report.h"
#include "svg_chart.h"

namespace moat::cli {

namespace po = boost::program_options;
namespace pl = moat::planner;

namespace {

constexpr const char* usage =
    "usage: moat plan --model NAME|CONFIG.json --weights fp32|fp16|bf16|int8|int4|nf4|nf4-dq\n"
    "                 --kv fp32|fp16|int8 --context N --concurrency N --gpu NAME [--gpus N]\n"
    "                 [--n N --prompt-tokens P] [--kv-block-size N] [--allocator glibc|mimalloc]\n"
    "                 [--costs FILE.yaml] [--json] [--chart FILE.svg]\n\n"
    "Sizes a model's memory (weights, KV cache, activations) per device, finds the smallest split\n"
    "that fits, estimates decode and prefill speed, and prices the deployment against a cloud "
    "API.\n"
    "See docs/planning.md.\n";

std::string grouped(long long v) {
  std::string digits = std::to_string(v), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void list_catalogue(const pl::catalogue& cat) {
  std::printf("presets:\n");
  for (const auto& m : pl::presets())
    std::printf("  %-16s %17s parameters\n", m.name.c_str(), grouped(m.total_params()).c_str());
  std::printf("devices:\n");
  for (const auto& [name, d] : cat.devices())
    std::printf("  %-12s %7.1f GiB %7.0f GB/s  %s\n", name.c_str(), d.memory_gib, d.bandwidth_gbps,
                d.description.c_str());
}

int run(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("help,h", "this text")(
      "model", po::value<std::string>(),
      "a preset, a Hugging Face config.json, or a llama2.c .bin")(
      "weights", po::value<std::string>()->default_value("fp16"),
      "fp32|fp16|bf16|int8|int4|nf4|nf4-dq")(
      "group", po::value<int>()->default_value(pl::default_int4_group),
      "int4 group size: 32|64|128")("kv", po::value<std::string>()->default_value("fp16"),
                                    "KV cache format: fp32|fp16|int8")(
      "context", po::value<long long>()->default_value(4096),
      "tokens per sequence (prompt + answer)")(
      "concurrency", po::value<long long>()->default_value(1), "sequences decoded together")(
      "n", po::value<long long>()->default_value(1),
      "choices per request (the OpenAI n), sharing its prompt's KV blocks")(
      "prompt-tokens", po::value<long long>()->default_value(0),
      "prompt tokens of each request (part of --context)")(
      "kv-block-size", po::value<long long>()->default_value(16),
      "positions per KV block (the backends' kv_block_size)")(
      "allocator", po::value<std::string>(),
      "the serving process's malloc: glibc|mimalloc (default: this binary's)")(
      "target", po::value<double>()->default_value(0), "aggregate decode tokens/s wanted")(
      "gpu", po::value<std::string>(), "device name from the catalogue (--list)")(
      "gpus", po::value<int>(), "number of devices (default: the fewest that fit)")(
      "tp", po::value<int>(), "tensor-parallel degree (default: --gpus within a server)")(
      "costs", po::value<std::string>(), "cost inputs (YAML, see docs/planning.md)")(
      "hardware", po::value<std::vector<std::string>>(), "extra catalogue YAML, may repeat")(
      "bench-results", po::value<std::string>()->default_value(""), "folder of benchmark results")(
      "json", "print the plan as a JSON object")("chart", po::value<std::string>(),
                                                 "write the cost chart as SVG")(
      "list", "list the presets and devices");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "moat plan: %s\n\n%s", e.what(), usage);
    return 2;
  }
  if (vm.count("help")) {
    std::cout << usage << "\n" << opts;
    return 0;
  }

  pl::catalogue cat = pl::builtin_catalogue();
  if (vm.count("hardware"))
    for (const auto& f : vm["hardware"].as<std::vector<std::string>>()) cat.merge_yaml_file(f);
  if (vm.count("list")) {
    list_catalogue(cat);
    return 0;
  }
  if (!vm.count("model")) throw pl::plan_error("--model is required (a preset, or a config.json)");
  if (!vm.count("gpu")) throw pl::plan_error("--gpu is required (see --list)");

  pl::plan_inputs in;
  in.model = pl::load_model(vm["model"].as<std::string>());
  in.weights = pl::parse_weight_format(vm["weights"].as<std::string>());
  in.group = vm["group"].as<int>();
  if (vm["group"].defaulted() == false && in.weights != pl::weight_format::int4)
    spdlog::warn("--group applies to int4 only; ignored for --weights {}", pl::name_of(in.weights));
  in.kv = pl::parse_kv_format(vm["kv"].as<std::string>());
  in.context = vm["context"].as<long long>();
  in.concurrency = vm["concurrency"].as<long long>();
  in.paging.n = vm["n"].as<long long>();
  in.paging.prompt = vm["prompt-tokens"].as<long long>();
  in.paging.block_size = vm["kv-block-size"].as<long long>();
  // `moat serve` from this executable uses the malloc this process uses (allocator.h).
  in.host_allocator = vm.count("allocator") ? pl::parse_allocator(vm["allocator"].as<std::string>())
                                            : pl::running_allocator();
  in.target_tokens_per_s = vm["target"].as<double>();
  in.dev = cat.find(vm["gpu"].as<std::string>());
  if (vm.count("gpus")) {
    in.gpus = vm["gpus"].as<int>();
    if (in.gpus < 1) throw pl::plan_error(fmt::format("--gpus {}: must be at least 1", in.gpus));
  }
  if (vm.count("tp")) {
    in.tp = vm["tp"].as<int>();
    if (in.tp < 1) throw pl::plan_error(fmt::format("--tp {}: must be at least 1", in.tp));
  }
  if (vm.count("costs")) in.costs = pl::load_costs_file(vm["costs"].as<std::string>());
  in.factors = pl::find_factors(in.dev, pl::bench_result_dirs(vm["bench-results"].as<std::string>()));

  const pl::plan_result r = pl::make_plan(in);
  std::cout << (vm.count("json") ? pl::render_json(r) : pl::render_table(r));

  if (vm.count("chart")) {
    const std::string path = vm["chart"].as<std::string>();
    if (!r.cost) {
      std::fprintf(stderr, "moat plan: no chart: the model does not run on this hardware, so it has no cost\n");
      return 1;
    }
    const std::string title = fmt::format("{} {} on {} x {}", in.model.name, pl::name_of(in.weights),
                                          r.planned->devices(), in.dev.name);
    std::ofstream out(path);
    out << pl::render_svg(pl::cost_chart(*r.cost, title));
    if (!out) {
      std::fprintf(stderr, "moat plan: cannot write %s\n", path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace

int plan_command(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const pl::plan_error& e) {
    std::fprintf(stderr, "moat plan: %s\n", e.what());
    return 2;
  }
}

}  // namespace moat::cli
