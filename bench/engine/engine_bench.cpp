// moat_engine_bench: CPU forward-pass throughput against the memory-bandwidth limit.
//
//   moat_engine_bench --model ../shared/fixtures/tinystories-656K-hf [--threads 0]
//   moat_engine_bench --synthetic 512,8,1408,32000      # dim,layers,ffn,vocab; random f32 weights
//
// Prints one markdown table row per measurement: prefill tokens/s, time to first token, decode
// tokens/s for 1/8/32 streams, and beside each decode figure the bound from a copy loop:
// streams * bandwidth / (weight bytes + streams * KV bytes read per token). RSS at the end.
// Never run as a test: figures depend on the machine and on what else runs on it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/cpu_runner.h"
#include "engine/loader.h"
#include <spdlog/spdlog.h>

namespace {

using clock_type = std::chrono::steady_clock;
using moat::engine::forward_item;

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

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
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

size_t weight_bytes(const moat::engine::model_weights& w) {
  size_t b = w.lm_head.bytes() + w.final_norm.bytes();
  for (const auto& l : w.layers) {
    for (const auto* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) b += t->bytes();
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, synth;
  int threads = 0, prompt_len = 128, decode_steps = 32;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model_path = v;
    else if (k == "--synthetic") synth = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--prompt") prompt_len = std::stoi(v);
    else if (k == "--decode") decode_steps = std::stoi(v);
    else {
      std::fprintf(stderr, "usage: %s (--model PATH | --synthetic dim,layers,ffn,vocab) [--threads N] [--prompt N] [--decode N]\n", argv[0]);
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);  // keep load/runner info lines out of the table
  try {
    std::shared_ptr<const moat::engine::loaded_model> model;
    std::unique_ptr<synthetic> synth_model;
    std::string name;
    if (!synth.empty()) {
      int d = 0, l = 0, f = 0, v = 0;
      if (std::sscanf(synth.c_str(), "%d,%d,%d,%d", &d, &l, &f, &v) != 4) throw std::runtime_error("bad --synthetic");
      synth_model = std::make_unique<synthetic>(d, l, f, v);
      // The runner must not own it: synth_model holds the weights and outlives the runner.
      model = std::shared_ptr<const moat::engine::loaded_model>(&synth_model->model, [](const moat::engine::loaded_model*) {});
      name = "synthetic " + synth;
    } else {
      model = std::make_shared<const moat::engine::loaded_model>(moat::engine::load_model(model_path));
      name = model_path.substr(model_path.find_last_of('/') + 1);
    }
    const auto& c = model->config;
    const int max_streams = 32;
    const int ctx = std::min(c.max_position_embeddings, prompt_len + decode_steps + 1);
    auto runner = moat::cpu::make_cpu_runner(model, {.threads = threads, .kv_cache_mb = 1 << 16, .max_ctx = ctx, .max_slots = max_streams});
    const double bw = copy_bandwidth();
    const size_t wbytes = weight_bytes(model->weights);
    const size_t vocab = static_cast<size_t>(c.vocab_size);
    std::mt19937 rng(7);
    std::vector<std::vector<int32_t>> prompts(max_streams, std::vector<int32_t>(static_cast<size_t>(prompt_len)));
    for (auto& p : prompts) for (auto& t : p) t = static_cast<int32_t>(rng() % vocab);

    std::printf("| model | measurement | value | bound (copy loop %.1f GB/s) |\n| --- | --- | --- | --- |\n", bw / 1e9);
    std::printf("| %s | weights read per step | %.1f MB | |\n", name.c_str(), static_cast<double>(wbytes) / 1e6);

    std::vector<float> logits(vocab * max_streams);
    {  // prefill and time to first token: one stream, the whole prompt in one forward
      forward_item it{0, prompts[0], 0, false};
      runner->forward({&it, 1}, logits);  // warm-up (page faults, pool start)
      auto t0 = clock_type::now();
      runner->forward({&it, 1}, logits);
      const double t = seconds_since(t0);
      std::printf("| %s | prefill %d tokens | %.0f tokens/s | |\n", name.c_str(), prompt_len, prompt_len / t);
      std::printf("| %s | time to first token (%d-token prompt) | %.1f ms | |\n", name.c_str(), prompt_len, t * 1e3);
    }
    for (int streams : {1, 8, 32}) {
      std::vector<forward_item> items;
      for (int s = 0; s < streams; ++s) items.push_back({s, prompts[s], 0, false});
      runner->forward(items, logits);
      std::vector<int32_t> next(static_cast<size_t>(streams));
      auto t0 = clock_type::now();
      for (int step = 0; step < decode_steps; ++step) {
        for (int s = 0; s < streams; ++s) {
          const float* row = logits.data() + static_cast<size_t>(s) * vocab;
          next[s] = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
          items[s] = {s, {&next[s], 1}, prompt_len + step, false};
        }
        runner->forward(items, logits);
      }
      const double t = seconds_since(t0);
      const double kv_read = static_cast<double>(runner->kv_bytes_per_token()) * (prompt_len + decode_steps / 2.0);
      const double bound = streams * bw / (static_cast<double>(wbytes) + streams * kv_read);
      std::printf("| %s | decode, %d stream%s | %.1f tokens/s | %.1f tokens/s |\n", name.c_str(), streams,
                  streams == 1 ? "" : "s", streams * decode_steps / t, bound);
    }
    std::printf("| %s | resident memory | %.1f MB | |\n", name.c_str(), rss_kib() / 1024.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moat_engine_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
