#include "plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moat::planner {

namespace {

constexpr double giga = 1e9;
constexpr double allreduce_latency_s = 8e-6;  // one small NCCL all-reduce inside a server
constexpr double cross_server_gbps = 50;      // 400 Gb/s InfiniBand/RoCE between servers
constexpr int max_devices_searched = 256;
constexpr double host_memory_usable = 0.9;    // the rest for the OS and pinned buffers

double gb(double bytes) { return bytes / giga; }

// FLOPs per token through the matrices: 2 per parameter a token passes, the LM head included
// and the embedding lookup excluded.
double matmul_flops_per_token(const model_spec& m) {
  const double active = static_cast<double>(m.active_params());
  return 2.0 * (m.tied_embeddings ? active : active - static_cast<double>(m.embedding_params()));
}

// Whether tp devices sharing every layer sit in one server.
bool tp_in_one_server(const layout& l, const device& d) { return l.tp <= d.per_node; }

}  // namespace

speed estimate_speed(const plan_inputs& in, const memory_model& mm, const layout& l,
                     double offload_per_device) {
  const model_spec& m = in.model;
  const device& d = in.dev;
  const double batch = static_cast<double>(in.concurrency);
  const double context = static_cast<double>(in.context);
  speed s;

  // Memory bound: every step streams the weights the batch touches and the whole KV cache of
  // every sequence (at full context: the worst step). Stages run one after another, so a step
  // takes the sum over stages; within a stage the tp devices stream their shares in parallel.
  const double kv_all = mm.kv_bytes_per_token() * context * batch;
  const double kv_offloaded = offload_per_device * l.devices();
  const double bandwidth = d.bandwidth_gbps * giga * in.factors.decode;
  s.memory_seconds = (mm.weights_read_per_step(in.concurrency) + kv_all - kv_offloaded) / (l.tp * bandwidth);
  if (offload_per_device > 0 && d.host_link_gbps > 0)
    s.offload_seconds = offload_per_device * l.pp / (d.host_link_gbps * giga);

  // Compute bound: 2 FLOPs per active parameter per sequence, plus attention over the context
  // (q.k and p.v: 4 * L * q_dim * context).
  const double flops = batch * (matmul_flops_per_token(m) +
                                4.0 * static_cast<double>(m.layers * m.q_dim()) * context);
  const double compute = d.compute_tflops * 1e12 * in.factors.prefill;
  s.compute_seconds = flops / (l.tp * compute);

  // Tensor parallel: two all-reduces of the [B, H] fp16 activations per layer (after attention
  // and after the FFN), ring cost 2 (tp-1)/tp of the message. Pipeline: one [B, H] hop per stage.
  const double message = batch * static_cast<double>(m.hidden) * 2.0;
  if (l.tp > 1) {
    const double link = (tp_in_one_server(l, d) && d.interconnect_gbps > 0) ? d.interconnect_gbps : cross_server_gbps;
    const double one = allreduce_latency_s + 2.0 * (l.tp - 1) / l.tp * message / (link * giga);
    s.comm_seconds += 2.0 * static_cast<double>(m.layers) * one;
  }
  if (l.pp > 1) {
    const bool same_server = l.devices() <= d.per_node && d.interconnect_gbps > 0;
    const double link = same_server ? d.interconnect_gbps : cross_server_gbps;
    s.comm_seconds += (l.pp - 1) * (allreduce_latency_s + message / (link * giga));
  }

  const double transfer = s.memory_seconds + s.offload_seconds;
  s.step_seconds = std::max(transfer, s.compute_seconds) + s.comm_seconds;
  if (s.compute_seconds > transfer) s.bound = "compute";
  else if (s.offload_seconds > s.memory_seconds) s.bound = "host link (offloaded KV)";
  else s.bound = "memory bandwidth";
  s.decode_tokens_per_s = batch / s.step_seconds;
  s.decode_tokens_per_s_per_sequence = 1.0 / s.step_seconds;

  // Prefill is compute bound; chunks pipeline through the stages, so every device is busy. The
  // average prompt position is context/2: attention costs 4 * L * q_dim * context/2 per token.
  const double prefill_flops = matmul_flops_per_token(m) + 2.0 * static_cast<double>(m.layers * m.q_dim()) * context;
  s.prefill_tokens_per_s = l.devices() * compute / prefill_flops;
  return s;
}

namespace {

// Candidate layouts, in order of preference: inside one server, tensor parallel alone over the
// fewest devices (TP must divide the heads, so 3, 5, 6 or 7 devices never appear); past one
// server, the widest TP a server allows, with one pipeline stage per extra server's worth.
std::vector<layout> candidates(const memory_model& mm, const device& d, int fixed_tp) {
  std::vector<layout> out;
  const std::int64_t layers = mm.model().layers;
  if (fixed_tp > 0) {
    for (int pp = 1; pp <= layers && fixed_tp * pp <= max_devices_searched; ++pp) out.push_back({fixed_tp, pp});
    return out;
  }
  const std::vector<int> tps = mm.valid_tp(d.per_node);
  for (int tp : tps) out.push_back({tp, 1});
  const int widest = tps.back();
  for (int pp = 2; pp <= layers && widest * pp <= max_devices_searched; ++pp) out.push_back({widest, pp});
  return out;
}

std::optional<layout> smallest_fit(const plan_inputs& in, const memory_model& mm, int fixed_tp) {
  for (const layout& l : candidates(mm, in.dev, fixed_tp))
    if (mm.on_device(l, in.dev, in.context, in.concurrency).fits()) return l;
  return std::nullopt;
}

// The layout the user asked for with --gpus and/or --tp, checked.
std::optional<layout> requested_layout(const plan_inputs& in) {
  const model_spec& m = in.model;
  const device& d = in.dev;
  if (in.tp > 0) {
    check_tensor_parallel(m, in.tp, "--tp");
    if (in.gpus == 0) return std::nullopt;  // search the stage count for this TP
    if (in.gpus % in.tp != 0)
      throw plan_error(fmt::format("--gpus {} is not a multiple of --tp {}", in.gpus, in.tp));
    if (in.gpus / in.tp > m.layers)
      throw plan_error(fmt::format("--gpus {} / --tp {} = {} pipeline stages, more than the {} layers",
                                   in.gpus, in.tp, in.gpus / in.tp, m.layers));
    return layout{in.tp, in.gpus / in.tp};
  }
  if (in.gpus == 0) return std::nullopt;
  // Without --tp: tensor parallel inside a server, pipeline stages across servers.
  const int tp = std::min(in.gpus, d.per_node);
  const bool heads_ok = m.heads % tp == 0 && m.kv_heads % tp == 0;
  if (!heads_ok || in.gpus % tp != 0) {
    const std::vector<int> tps = memory_model(m, in.weights, in.group, in.kv, in.paging).valid_tp(d.per_node);
    std::vector<std::string> options;
    for (int t : tps)
      if (in.gpus % t == 0 && in.gpus / t <= m.layers)
        options.push_back(fmt::format("--tp {} ({} stages)", t, in.gpus / t));
    const std::string why =
        in.gpus > d.per_node
            ? fmt::format("without --tp the plan runs TP {} inside each {}-device server and one pipeline "
                          "stage per server, so --gpus must be a multiple of {}{}",
                          tp, d.per_node, tp, heads_ok ? "" : " (and TP must divide the heads)")
            : fmt::format("tensor parallelism {} does not divide the {} attention heads and {} KV heads of {} "
                          "(valid degrees: {})", tp, m.heads, m.kv_heads, m.name, fmt::join(tps, ", "));
    throw plan_error(fmt::format("--gpus {}: {}; {}", in.gpus, why,
                                 options.empty() ? std::string("choose another count")
                                                 : "use a valid count, or split explicitly with " + fmt::format("{}", fmt::join(options, " or "))));
  }
  if (in.gpus / tp > m.layers)
    throw plan_error(fmt::format("--gpus {}: {} pipeline stages exceed the {} layers", in.gpus, in.gpus / tp, m.layers));
  return layout{tp, in.gpus / tp};
}

void advise(plan_result& r, const memory_model& mm) {
  const plan_inputs& in = r.in;
  const device& d = in.dev;
  auto& a = r.advice;
  if (in.model.max_context > 0 && in.context > in.model.max_context)
    a.push_back(fmt::format("context {} exceeds the model's max_position_embeddings {}", in.context,
                            in.model.max_context));
  if (!r.planned) {
    a.push_back(fmt::format("no split of up to {} {} holds this model and workload", max_devices_searched, d.name));
  } else if (r.planned->tp > d.per_node) {
    a.push_back(fmt::format("TP {} spans servers of {}: every layer's all-reduce crosses the network; "
                            "prefer TP within a server and pipeline stages across", r.planned->tp, d.per_node));
  }
  if (!r.planned || r.fits) {
    if (r.fits && r.planned) {
      const per_device& pd = r.on_device;
      const double per_seq = pd.kv / static_cast<double>(in.concurrency);
      if (per_seq > 0)
        a.push_back(fmt::format("headroom {:.1f} GB per device: room for {} more sequence(s) at this context",
                                gb(pd.headroom()), static_cast<long long>(pd.headroom() / per_seq)));
    }
    return;
  }
  const layout l = *r.planned;
  if (r.needed)
    a.push_back(fmt::format("it fits on {} x {} (TP {} x PP {})", r.needed->devices(), d.name, r.needed->tp,
                            r.needed->pp));
  for (weight_format f : {weight_format::int8, weight_format::nf4, weight_format::int4, weight_format::nf4_dq}) {
    if (weight_bits(f, in.group, in.model.hidden) >= weight_bits(in.weights, in.group, in.model.hidden)) continue;
    memory_model lower(in.model, f, in.group, in.kv, in.paging, in.host_allocator);
    if (lower.on_device(l, d, in.context, in.concurrency).fits())
      a.push_back(fmt::format("with --weights {} it fits on these {} devices", name_of(f), l.devices()));
  }
  if (in.kv != kv_format::int8) {
    memory_model kv8(in.model, in.weights, in.group, kv_format::int8, in.paging, in.host_allocator);
    if (kv8.on_device(l, d, in.context, in.concurrency).fits())
      a.push_back(in.kv == kv_format::fp16 ? "with --kv int8 (half the KV bytes) it fits"
                                           : "with --kv int8 (a quarter of the KV bytes) it fits");
  }
  const per_device& pd = r.on_device;
  const double per_seq = pd.kv / static_cast<double>(in.concurrency);
  if (pd.kv_room() > 0 && per_seq > 0) {
    const auto seqs = static_cast<long long>(pd.kv_room() / per_seq);
    if (seqs >= 1)
      a.push_back(fmt::format("at context {} the devices hold the KV of {} sequence(s) (not {})", in.context, seqs,
                              in.concurrency));
  }
  if (r.runs && r.kv_offload_bytes > 0 && r.perf) {
    const speed on_device = estimate_speed(in, mm, l, 0);
    a.push_back(fmt::format("KV cache in host memory: {:.1f} GB, streamed over the {:.0f} GB/s host link "
                            "every step: +{:.1f} ms a step, decode {:.1f} tok/s instead of {:.1f} if it fitted",
                            gb(r.kv_offload_bytes), d.host_link_gbps, r.perf->offload_seconds * 1e3,
                            r.perf->decode_tokens_per_s, on_device.decode_tokens_per_s));
  } else if (!r.runs && pd.kv_room() <= 0) {
    a.push_back(fmt::format("the weights alone ({:.1f} GB per device) do not leave room on {} x {}",
                            gb(pd.weights), l.devices(), d.name));
  } else if (!r.runs) {
    a.push_back(d.is_cpu ? std::string("the KV cache does not fit, and a CPU server has no host memory beyond its own")
                         : fmt::format("the KV cache does not fit, and {:.0f} GiB of host memory per server cannot "
                                       "hold the {:.1f} GB per server that would overflow", d.host_memory_gib,
                                       gb((pd.kv - pd.kv_room()) * std::min(l.devices(), d.per_node))));
  }
}

}  // namespace

plan_result make_plan(const plan_inputs& in) {
  if (in.context < 1) throw plan_error("--context must be at least 1");
  if (in.concurrency < 1) throw plan_error("--concurrency must be at least 1");
  if (in.gpus < 0) throw plan_error("--gpus must be at least 1");
  if (in.paging.prompt > in.context)
    throw plan_error(fmt::format("--prompt-tokens {} exceeds --context {} (the context counts the prompt and the answer)",
                                 in.paging.prompt, in.context));
  if (!(in.target_tokens_per_s >= 0 && in.target_tokens_per_s <= 1e12))
    throw plan_error("--target must lie between 0 and 1e12 tokens/s");

  plan_result r;
  r.in = in;
  const memory_model mm(in.model, in.weights, in.group, in.kv, in.paging, in.host_allocator);
  r.params_total = static_cast<double>(in.model.total_params());
  r.params_active = static_cast<double>(in.model.active_params());
  r.weights_bytes = mm.weights_bytes();
  r.weight_bits_per_param = r.weights_bytes * 8.0 / r.params_total;
  r.kv_bytes_per_token = mm.kv_bytes_per_token();
  r.kv_blocks = mm.kv_blocks(in.context, in.concurrency);
  r.kv_bytes_total = r.kv_bytes_per_token * mm.kv_positions(in.context, in.concurrency);

  r.planned = requested_layout(in);
  r.needed = smallest_fit(in, mm, in.tp);
  if (!r.planned) r.planned = r.needed;

  double offload_per_device = 0;
  if (r.planned) {
    const layout l = *r.planned;
    r.on_device = mm.on_device(l, in.dev, in.context, in.concurrency);
    r.total_bytes =
        r.weights_bytes + r.kv_bytes_total +
        (r.on_device.activations + r.on_device.overhead + r.on_device.allocator) * l.devices();
    r.fits = r.on_device.fits();
    r.runs = r.fits;
    if (!r.fits && !in.dev.is_cpu && r.on_device.kv_room() > 0 && in.dev.host_link_gbps > 0) {
      // Weights fit; the KV that does not goes to host memory, if the servers have the room.
      offload_per_device = r.on_device.kv - r.on_device.kv_room();
      const int per_server = std::min(l.devices(), in.dev.per_node);
      const double host = in.dev.host_memory_gib * 1024.0 * 1024.0 * 1024.0 * host_memory_usable;
      if (offload_per_device * per_server <= host) {
        r.kv_offload_bytes = offload_per_device * l.devices();
        r.runs = true;
      } else {
        offload_per_device = 0;
      }
    }
    if (r.runs) {
      r.perf = estimate_speed(in, mm, l, offload_per_device);
      r.cost = compute_cost(in.costs, in.dev, l.devices(),
                            capacity{r.perf->decode_tokens_per_s, r.perf->prefill_tokens_per_s});
      const double copies = std::ceil(in.target_tokens_per_s / r.perf->decode_tokens_per_s);
      if (in.target_tokens_per_s > 0 && copies <= 1e15) r.replicas_for_target = std::llround(copies);
    }
  }
  advise(r, mm);
  return r;
}

}  // namespace moat::planner
