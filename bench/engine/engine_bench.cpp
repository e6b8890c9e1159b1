// moat_engine_bench: CPU forward-pass throughput against the memory-bandwidth limit.
//
//   moat_engine_bench --model ../shared/fixtures/tinystories-656K-hf [--threads 0]
//   moat_engine_bench --synthetic 512,8,1408,32000      # dim,layers,ffn,vocab; random f32 weights
//   moat_engine_bench --model bench/out/synthetic-tinyllama-1.1b --quant int8 --threads 2
//                     --prompt 128 --ctx 64 --decode 16 --streams 1,8,32 --json
//
// Prints one markdown table row per measurement (or, with --json, one JSON object that
// bench/engine/llamacpp.py reads): prefill tokens/s, time to first token, decode tokens/s for
// each stream count, and beside each decode figure the bound from a copy loop:
// streams * bandwidth / (weight bytes + streams * KV bytes read per token). RSS at the end.
// --quant int8|int4|nf4 quantizes the linear weights on load (cpu_options.quant). Decode
// streams are first prefilled with --ctx random tokens each (default: --prompt), then run
// --decode greedy steps all together, one forward per step (the runner's continuous batch);
// --reps N keeps the best of N timed runs (prefill and each decode loop) on a shared machine.
// --phases (or MOAT_CPU_PHASES=1) prints to stderr where a step's time goes (cpu/phase_times.h):
// ms per step and share of the step, for prefill and each stream count, averaged over all reps;
// "other" is the step's wall time the phases do not cover (thread wake-ups outside regions,
// scratch growth, the bench's greedy argmax is listed on its own).
// --dump FILE writes the logits after prefill and after each stream count's last decode step
// (raw floats): `cmp` two builds' files to check that a speed change kept every bit.
// --cpu-time times prefill and decode by process CPU time instead of wall time (with --threads 1:
// two builds compared on a machine other work shares).
// The bandwidth figures: copy (memcpy, 1 thread, read + written bytes, the bound's) and read
// (a sum over 1 GiB split over --threads threads, read bytes only).
// Never run as a test: figures depend on the machine and on what else runs on it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cpu/cpu_runner.h"
#include "cpu/model_view.h"
#include "cpu/phase_times.h"
#include "cpu/quant/matmul.h"
#include "engine/loader.h"

namespace {

using clock_type = std::chrono::steady_clock;
using moat::engine::forward_item;

// The greedy token of one logits row: the first index of the largest value, as
// std::max_element gives it, in two passes the compiler vectorizes (8 running maxima, then a
// search for the first equal value); max_element's one compare-and-branch per element was 4-8%
// of a tiny model's decode step. Logits are finite (a NaN would make both forms ill-defined).
int32_t greedy(const float* row, size_t n) {
  float m[8];
  for (int k = 0; k < 8; ++k) m[k] = row[0];
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) m[k] = row[i + k] > m[k] ? row[i + k] : m[k];
  float best = m[0];
  for (int k = 1; k < 8; ++k) best = m[k] > best ? m[k] : best;
  for (; i < n; ++i) best = row[i] > best ? row[i] : best;
  return static_cast<int32_t>(std::find(row, row + n, best) - row);
}

// The clock of the timed prefill and decode loops: wall time, or with --cpu-time the process's
// CPU time (with --threads 1, the forward's own time even when other processes take turns on
// the cores: for comparing two builds on a shared machine, not for the table).
bool g_cpu_time = false;
double step_clock() {
  if (g_cpu_time) {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
  return std::chrono::duration<double>(clock_type::now().time_since_epoch()).count();
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Best of 5 memcpy passes over 256 MiB: bytes read + written per second.
double copy_bandwidth() {
  const size_t n = size_t{256} << 20;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    auto t0 = clock_type::now();
    std::memcpy(b.data(), a.data(), n);
    best = std::min(best, seconds_since(t0));
    a[static_cast<size_t>(i)] = b[n - 1 - static_cast<size_t>(i)];  // keep the copies observable
  }
  return 2.0 * static_cast<double>(n) / best;
}

// Best of 5 passes summing 1 GiB of uint64 split over `threads` threads: bytes read per second.
double read_bandwidth(int threads) {
  threads = std::max(1, threads);
  const size_t n = (size_t{1} << 30) / sizeof(uint64_t);
  std::vector<uint64_t> a(n);
  for (size_t i = 0; i < n; ++i) a[i] = i;                       // touch every page before timing
  std::vector<uint64_t> sums(static_cast<size_t>(threads) * 8);  // one cache line per thread
  double best = 1e30;
  for (int pass = 0; pass < 5; ++pass) {
    auto t0 = clock_type::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        const size_t b = n * static_cast<size_t>(t) / static_cast<size_t>(threads);
        const size_t e = n * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
        uint64_t acc[8] = {};
        for (size_t i = b; i + 8 <= e; i += 8) {
          for (int k = 0; k < 8; ++k) acc[k] += a[i + static_cast<size_t>(k)];
        }
        for (int k = 0; k < 8; ++k) sums[static_cast<size_t>(t) * 8] += acc[k];
      });
    }
    for (auto& th : ts) th.join();
    best = std::min(best, seconds_since(t0));
  }
  uint64_t total = 0;
  for (auto v : sums) total += v;
  if (total == 1) std::fprintf(stderr, " ");  // keeps the sums observable
  return static_cast<double>(n * sizeof(uint64_t)) / best;
}

// Per-step phase times (cpu/phase_times.h) of one measurement, for the --phases table.
struct phase_column {
  std::string label;
  std::array<double, moat::cpu::phase_count> ms{};  // per step
  double sample_ms = 0, step_ms = 0;
  double regions = 0,
         wait_ms = 0;  // per step: pool regions that woke workers, caller's wait in them
};

phase_column take_phases(std::string label, double wall_s, double sample_s, int steps) {
  phase_column col;
  col.label = std::move(label);
  const auto s = moat::cpu::phase_times::seconds();
  for (int i = 0; i < moat::cpu::phase_count; ++i)
    col.ms[static_cast<size_t>(i)] = s[static_cast<size_t>(i)] * 1e3 / steps;
  col.sample_ms = sample_s * 1e3 / steps;
  col.step_ms = wall_s * 1e3 / steps;
  col.regions = static_cast<double>(moat::cpu::phase_times::regions()) / steps;
  col.wait_ms = moat::cpu::phase_times::caller_wait_seconds() * 1e3 / steps;
  return col;
}

void print_phases(const std::string& name, const std::vector<phase_column>& cols) {
  std::fprintf(stderr, "\n%s: time per step, ms (share of the step)\n| phase |", name.c_str());
  for (const auto& c : cols) std::fprintf(stderr, " %s |", c.label.c_str());
  std::fprintf(stderr, "\n| --- |");
  for (size_t i = 0; i < cols.size(); ++i) std::fprintf(stderr, " ---: |");
  std::fprintf(stderr, "\n");
  auto row = [&](const char* label, auto value) {
    std::fprintf(stderr, "| %s |", label);
    for (const auto& c : cols) {
      const double v = value(c);
      std::fprintf(stderr, " %.2f (%.1f%%) |", v, c.step_ms > 0 ? 100.0 * v / c.step_ms : 0.0);
    }
    std::fprintf(stderr, "\n");
  };
  for (int i = 0; i < moat::cpu::phase_count; ++i) {
    row(moat::cpu::phase_times::name(static_cast<moat::cpu::phase>(i)),
        [&](const phase_column& c) { return c.ms[static_cast<size_t>(i)]; });
  }
  row("greedy argmax (bench)", [](const phase_column& c) { return c.sample_ms; });
  row("other", [](const phase_column& c) {
    double sum = c.sample_ms;
    for (double v : c.ms) sum += v;
    return c.step_ms - sum;
  });
  row("step", [](const phase_column& c) { return c.step_ms; });
  row("(within the above) caller waiting for workers",
      [](const phase_column& c) { return c.wait_ms; });
  std::fprintf(stderr, "| parallel regions per step |");
  for (const auto& c : cols) std::fprintf(stderr, " %.0f |", c.regions);
  std::fprintf(stderr, "\n");
}

// A "Key:   123 kB" line of /proc/self/status, in KiB (-1 when absent).
long status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
      return std::stol(line.substr(n + 1));
  }
  return -1;
}

// A random-weight Llama held in vectors the returned model points into.
struct synthetic {
  std::vector<std::vector<float>> buffers;
  moat::engine::loaded_model model;

  synthetic(int dim, int layers, int ffn, int vocab) {
    auto& c = model.config;
    c.hidden_size = dim;
    c.n_layers = layers;
    c.intermediate_size = ffn;
    c.vocab_size = vocab;
    c.n_heads = dim / 64;
    c.n_kv_heads = c.n_heads;
    c.head_dim = 64;
    c.max_position_embeddings = 2048;
    c.validate("synthetic");
    model.format = "synthetic";
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    auto make = [&](std::vector<int64_t> shape, bool norm) {
      int64_t n = 1;
      for (auto d : shape) n *= d;
      buffers.emplace_back(static_cast<size_t>(n));
      for (auto& v : buffers.back()) v = norm ? 1.0f : nd(rng);
      return moat::engine::tensor{"w", moat::engine::dtype::f32, shape, buffers.back().data()};
    };
    buffers.reserve(static_cast<size_t>(layers) * 9 + 3);
    auto& w = model.weights;
    w.embed = make({vocab, dim}, false);
    w.lm_head = make({vocab, dim}, false);
    w.final_norm = make({dim}, true);
    for (int l = 0; l < layers; ++l) {
      moat::engine::layer_weights lw;
      lw.attn_norm = make({dim}, true);
      lw.ffn_norm = make({dim}, true);
      lw.wq = make({dim, dim}, false);
      lw.wk = make({dim, dim}, false);
      lw.wv = make({dim, dim}, false);
      lw.wo = make({dim, dim}, false);
      lw.w_gate = make({ffn, dim}, false);
      lw.w_up = make({ffn, dim}, false);
      lw.w_down = make({dim, ffn}, false);
      w.layers.push_back(std::move(lw));
    }
  }
};

// Bytes one forward step reads from the weights: every linear weight and norm once (the
// embedding only one row per token, left out). With a quant the linear weights (and an untied
// lm_head) are read in that format, as model_view quantizes them.
size_t weight_bytes(const moat::engine::model_weights& w, const std::string& quant) {
  const auto parsed = moat::cpu::quant::parse_weight_format(quant);
  const bool as_stored = quant.empty() || !parsed;
  const auto fmt = parsed.value_or(moat::cpu::quant::weight_format::q8_0);
  auto linear = [&](const moat::engine::tensor& t) {
    if (as_stored) return t.bytes();
    return moat::cpu::quant::weight_bytes(fmt, static_cast<size_t>(t.rows()),
                                          static_cast<size_t>(t.cols()));
  };
  size_t b = (w.lm_head.data == w.embed.data ? w.lm_head.bytes() : linear(w.lm_head)) +
             w.final_norm.bytes();
  for (const auto& l : w.layers) {
    b += l.attn_norm.bytes() + l.ffn_norm.bytes();
    for (const auto* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      b += linear(*t);
  }
  return b;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) out.push_back(std::stoi(part));
  return out;
}

struct results {
  double prefill_tps = 0, ttft_ms = 0, bandwidth = 0, read_bandwidth = 0, load_s = 0;
  std::vector<std::pair<int, double>> decode;  // (streams, tokens/s)
  std::vector<double> bound;                   // tokens/s per decode entry
};

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, synth, quant, streams_arg = "1,8,32", dump_path;
  int threads = 0, prompt_len = 128, ctx_len = -1, decode_steps = 32, reps = 1;
  bool json = false, phases = moat::cpu::phase_times::enabled();
  for (int i = 1; i < argc; ++i) {
    const bool is_flag = std::strcmp(argv[i], "--json") == 0 ||
                         std::strcmp(argv[i], "--phases") == 0 ||
                         std::strcmp(argv[i], "--cpu-time") == 0;
    const std::string k = i + 1 < argc || is_flag ? argv[i] : "--missing-value";
    if (k == "--cpu-time") {
      g_cpu_time = true;
      continue;
    }
    if (k == "--json" || k == "--phases") {
      (k == "--json" ? json : phases) = true;
      continue;
    }
    const std::string v = i + 1 < argc ? argv[++i] : "";
    if (k == "--model")
      model_path = v;
    else if (k == "--synthetic")
      synth = v;
    else if (k == "--quant")
      quant = v;
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--prompt")
      prompt_len = std::stoi(v);
    else if (k == "--ctx")
      ctx_len = std::stoi(v);
    else if (k == "--decode")
      decode_steps = std::stoi(v);
    else if (k == "--streams")
      streams_arg = v;
    else if (k == "--dump")
      dump_path = v;
    else if (k == "--reps")
      reps = std::max(1, std::stoi(v));
    else {
      std::fprintf(stderr,
                   "usage: %s (--model PATH | --synthetic dim,layers,ffn,vocab) [--quant "
                   "int8|int4|nf4] [--threads N]\n"
                   "          [--prompt N] [--ctx N] [--decode N] [--streams 1,8,32] [--reps N] "
                   "[--json] [--phases] [--dump FILE] [--cpu-time]\n",
                   argv[0]);
      return 2;
    }
  }
  if (ctx_len < 0) ctx_len = prompt_len;
  spdlog::set_level(spdlog::level::warn);  // keep load/runner info lines out of the table
  moat::cpu::phase_times::enable(phases);
  std::vector<phase_column> phase_cols;
  try {
    const std::vector<int> stream_counts = parse_list(streams_arg);
    const int max_streams =
        std::max(1, *std::max_element(stream_counts.begin(), stream_counts.end()));
    std::shared_ptr<const moat::engine::loaded_model> model;
    std::unique_ptr<synthetic> synth_model;
    std::string name;
    auto t_load = clock_type::now();
    if (!synth.empty()) {
      int d = 0, l = 0, f = 0, v = 0;
      if (std::sscanf(synth.c_str(), "%d,%d,%d,%d", &d, &l, &f, &v) != 4)
        throw std::runtime_error("bad --synthetic");
      synth_model = std::make_unique<synthetic>(d, l, f, v);
      // The runner must not own it: synth_model holds the weights and outlives the runner.
      model = std::shared_ptr<const moat::engine::loaded_model>(
          &synth_model->model, [](const moat::engine::loaded_model*) {});
      name = "synthetic " + synth;
    } else {
      // As the cpu plugin serves: the loader quantizes the linear weights and releases their
      // source pages, so resident memory is what `moat serve` would hold.
      moat::engine::load_options lo;
      if (auto d = moat::cpu::parse_quant(quant)) lo.quant = *d;
      lo.threads = static_cast<unsigned>(std::max(threads, 0));
      model = std::make_shared<const moat::engine::loaded_model>(
          moat::engine::load_model(model_path, lo));
      std::string p = model_path;
      while (p.size() > 1 && p.back() == '/') p.pop_back();
      name = p.substr(p.find_last_of('/') + 1);
    }
    if (!quant.empty()) name += " " + quant;
    const auto& c = model->config;
    const int ctx = std::min(c.max_position_embeddings,
                             std::max(prompt_len, ctx_len + decode_steps * reps + 1) + 1);
    auto runner = moat::cpu::make_cpu_runner(model, {.threads = threads,
                                                     .kv_cache_mb = 1 << 16,
                                                     .max_ctx = ctx,
                                                     .max_slots = max_streams,
                                                     .quant = quant});
    results r;
    r.load_s = seconds_since(t_load);
    r.bandwidth = copy_bandwidth();
    const int bw_threads =
        threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
    r.read_bandwidth = read_bandwidth(bw_threads);
    // Weight bytes one step reads: the quantized tensors when --quant (the runner's own copies).
    const size_t wbytes = weight_bytes(model->weights, quant);
    const size_t vocab = static_cast<size_t>(c.vocab_size);
    std::mt19937 rng(7);
    const int plen = std::max(prompt_len, ctx_len);
    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(max_streams),
                                              std::vector<int32_t>(static_cast<size_t>(plen)));
    for (auto& p : prompts)
      for (auto& t : p) t = static_cast<int32_t>(rng() % vocab);

    std::vector<float> logits(vocab * static_cast<size_t>(max_streams));
    // --dump: the logits after prefill and after each stream count's last step, raw floats in
    // that order, to compare two builds bit for bit (cmp): the runs are deterministic.
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> dump(
        dump_path.empty() ? nullptr : std::fopen(dump_path.c_str(), "wb"), &std::fclose);
    if (!dump_path.empty() && !dump) throw std::runtime_error("cannot write " + dump_path);
    const auto dump_rows = [&](int rows) {
      if (dump)
        std::fwrite(logits.data(), sizeof(float), vocab * static_cast<size_t>(rows), dump.get());
    };
    {  // prefill and time to first token: one stream, the whole prompt in one forward
      const std::span<const int32_t> prompt(prompts[0].data(), static_cast<size_t>(prompt_len));
      moat::engine::forward_item it{.slot = 0, .tokens = prompt, .start_pos = 0};
      runner->forward({&it, 1}, logits);  // warm-up (page faults, pool start)
      double t = 1e30, wall = 0;
      moat::cpu::phase_times::reset();
      for (int rep = 0; rep < reps; ++rep) {  // best of --reps: the machine may be shared
        const double t0 = step_clock();
        runner->forward({&it, 1}, logits);
        const double dt = step_clock() - t0;
        t = std::min(t, dt);
        wall += dt;
      }
      if (phases)
        phase_cols.push_back(take_phases("prefill " + std::to_string(prompt_len), wall, 0.0, reps));
      dump_rows(1);
      r.prefill_tps = prompt_len / t;
      r.ttft_ms = t * 1e3;
    }
    for (int streams : stream_counts) {
      std::vector<moat::engine::forward_item> items;
      for (int s = 0; s < streams; ++s) {
        items.push_back(
            {.slot = s,
             .tokens = std::span<const int32_t>(prompts[s].data(), static_cast<size_t>(ctx_len)),
             .start_pos = 0});
      }
      runner->forward(items, logits);  // every stream's context, one batched prefill (not timed)
      std::vector<int32_t> next(static_cast<size_t>(streams));
      double sample_s = 0;
      auto step = [&](int pos) {
        const auto ts = clock_type::now();
        for (int s = 0; s < streams; ++s) {
          const float* row = logits.data() + static_cast<size_t>(s) * vocab;
          next[s] = greedy(row, vocab);
          items[s] = {.slot = s, .tokens = {&next[s], 1}, .start_pos = pos};
        }
        if (phases) sample_s += seconds_since(ts);
        runner->forward(items, logits);
      };
      step(ctx_len);  // warm-up: the first decode-shaped step grows scratch buffers
      double t = 1e30, wall = 0;
      int pos = ctx_len;
      moat::cpu::phase_times::reset();
      sample_s = 0;
      for (int rep = 0; rep < reps;
           ++rep) {  // best of --reps runs of --decode steps, positions go on
        const double t0 = step_clock();
        for (int i = 1; i <= decode_steps; ++i) step(++pos);
        const double dt = step_clock() - t0;
        t = std::min(t, dt);
        wall += dt;
      }
      if (phases)
        phase_cols.push_back(
            take_phases("decode " + std::to_string(streams), wall, sample_s, reps * decode_steps));
      const double kv_read =
          static_cast<double>(runner->kv_bytes_per_token()) * (ctx_len + decode_steps * reps / 2.0);
      dump_rows(streams);
      r.decode.emplace_back(streams, streams * decode_steps / t);
      r.bound.push_back(streams * r.bandwidth / (static_cast<double>(wbytes) + streams * kv_read));
    }
    if (phases) print_phases(name, phase_cols);
    const double rss = status_kib("VmRSS") / 1024.0, hwm = status_kib("VmHWM") / 1024.0;
    const double anon = status_kib("RssAnon") / 1024.0, file = status_kib("RssFile") / 1024.0;
    if (json) {
      std::printf(
          "{\"model\": \"%s\", \"quant\": \"%s\", \"isa\": \"%s\", \"threads\": %d, \"prompt\": "
          "%d, \"ctx\": %d, "
          "\"decode_steps\": %d, \"load_s\": %.2f, \"copy_bandwidth\": %.4g, \"read_bandwidth\": "
          "%.4g, \"weight_bytes\": %zu, "
          "\"kv_bytes_per_token\": %zu, \"prefill_tps\": %.2f, \"ttft_ms\": %.2f, \"rss_mib\": "
          "%.1f, "
          "\"hwm_mib\": %.1f, \"rss_anon_mib\": %.1f, \"rss_file_mib\": %.1f, \"decode\": [",
          name.c_str(), quant.c_str(),
          moat::cpu::quant::isa_name(moat::cpu::quant::kernels().which), threads, prompt_len,
          ctx_len, decode_steps, r.load_s, r.bandwidth, r.read_bandwidth, wbytes,
          runner->kv_bytes_per_token(), r.prefill_tps, r.ttft_ms, rss, hwm, anon, file);
      for (size_t i = 0; i < r.decode.size(); ++i) {
        std::printf("%s{\"streams\": %d, \"tps\": %.3f, \"bound_tps\": %.3f}", i ? ", " : "",
                    r.decode[i].first, r.decode[i].second, r.bound[i]);
      }
      std::printf("]}\n");
      return 0;
    }
    std::printf("Read bandwidth (%d threads, read bytes): %.1f GB/s\n\n", bw_threads,
                r.read_bandwidth / 1e9);
    std::printf(
        "| model | measurement | value | bound (copy loop %.1f GB/s) |\n| --- | --- | --- | --- "
        "|\n",
        r.bandwidth / 1e9);
    std::printf("| %s | weights read per step | %.1f MB | |\n", name.c_str(),
                static_cast<double>(wbytes) / 1e6);
    std::printf("| %s | prefill %d tokens | %.0f tokens/s | |\n", name.c_str(), prompt_len,
                r.prefill_tps);
    std::printf("| %s | time to first token (%d-token prompt) | %.1f ms | |\n", name.c_str(),
                prompt_len, r.ttft_ms);
    for (size_t i = 0; i < r.decode.size(); ++i) {
      const int streams = r.decode[i].first;
      std::printf("| %s | decode, %d stream%s | %.1f tokens/s | %.1f tokens/s |\n", name.c_str(),
                  streams, streams == 1 ? "" : "s", r.decode[i].second, r.bound[i]);
    }
    std::printf("| %s | resident memory | %.1f MB | |\n", name.c_str(), rss);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moat_engine_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
