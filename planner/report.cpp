#include "report.h"

#include <fmt/format.h>

#include <cmath>

namespace moat::planner {

namespace {

constexpr double giga = 1e9;

// A minimal JSON object writer: keys in insertion order, numbers finite or null.
class json_object {
 public:
  json_object& raw(const std::string& key, const std::string& value) {
    body_ += fmt::format("{}{}: {}", body_.empty() ? "" : ",\n", quote(key), value);
    return *this;
  }
  json_object& str(const std::string& key, const std::string& v) { return raw(key, quote(v)); }
  json_object& num(const std::string& key, double v) { return raw(key, number(v)); }
  json_object& bytes(const std::string& key, double v) {
    return raw(key, std::isfinite(v) ? fmt::format("{}", std::llround(v)) : "null");
  }
  json_object& boolean(const std::string& key, bool v) { return raw(key, v ? "true" : "false"); }
  json_object& null(const std::string& key) { return raw(key, "null"); }
  std::string done() const { return "{\n" + indent(body_) + "\n}"; }

  static std::string number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }
  static std::string quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
      else if (c < 0x20) out += fmt::format("\\u{:04x}", c);
      else out += static_cast<char>(c);
    }
    return out + "\"";
  }

 private:
  static std::string indent(const std::string& s) {
    std::string out = "  ";
    for (char c : s) {
      out += c;
      if (c == '\n') out += "  ";
    }
    return out;
  }
  std::string body_;
};

template <class T>
std::string opt_num(const std::optional<T>& v) {
  return v ? json_object::number(static_cast<double>(*v)) : "null";
}

std::string gb(double bytes) { return fmt::format("{:.2f} GB", bytes / giga); }

std::string si(double v) {
  const char* suffix[] = {"", "k", "M", "B", "T", "P"};
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 5) v /= 1000, ++i;
  return fmt::format("{:.3g}{}", v, suffix[i]);
}

}  // namespace

std::string render_json(const plan_result& r) {
  const plan_inputs& in = r.in;
  const model_spec& m = in.model;
  json_object model;
  model.str("name", m.name).str("source", m.source).bytes("params_total", r.params_total)
      .bytes("params_active", r.params_active).num("hidden_size", m.hidden).num("num_hidden_layers", m.layers)
      .num("num_attention_heads", m.heads).num("num_key_value_heads", m.kv_heads).num("head_dim", m.head_dim)
      .num("intermediate_size", m.intermediate).num("vocab_size", m.vocab)
      .boolean("tie_word_embeddings", m.tied_embeddings).num("num_local_experts", m.experts)
      .num("num_experts_per_tok", m.experts_per_token);

  json_object o;
  o.raw("model", model.done());
  o.str("weights", std::string(name_of(in.weights)));
  if (in.weights == weight_format::int4) o.num("int4_group", in.group);
  o.num("weight_bits_per_param", r.weight_bits_per_param);
  o.str("kv", std::string(name_of(in.kv)))
      .num("context", static_cast<double>(in.context))
      .num("concurrency", static_cast<double>(in.concurrency))
      .str("gpu", in.dev.name)
      .str("allocator", std::string(name_of(in.host_allocator)));
  o.num("n", static_cast<double>(in.paging.n)).num("prompt_tokens", static_cast<double>(in.paging.prompt))
      .num("kv_block_size", static_cast<double>(in.paging.block_size)).num("kv_blocks", r.kv_blocks);
  o.bytes("weights_bytes", r.weights_bytes).bytes("kv_bytes_per_token", r.kv_bytes_per_token)
      .bytes("kv_bytes_total", r.kv_bytes_total).bytes("total_bytes", r.total_bytes);
  o.boolean("fits", r.fits).boolean("runs", r.runs);
  o.raw("gpus_needed", r.needed ? fmt::format("{}", r.needed->devices()) : "null");
  o.raw("gpus", r.planned ? fmt::format("{}", r.planned->devices()) : "null");
  o.raw("tensor_parallel", r.planned ? fmt::format("{}", r.planned->tp) : "null");
  o.raw("pipeline_parallel", r.planned ? fmt::format("{}", r.planned->pp) : "null");
  if (r.planned) {
    const per_device& d = r.on_device;
    json_object pg;
    pg.bytes("weights_bytes", d.weights)
        .bytes("kv_bytes", d.kv)
        .bytes("activation_bytes", d.activations)
        .bytes("overhead_bytes", d.overhead)
        .bytes("allocator_bytes", d.allocator)
        .bytes("total_bytes", d.total())
        .bytes("capacity_bytes", d.capacity)
        .bytes("headroom_bytes", d.headroom());
    o.raw("per_gpu", pg.done());
  } else {
    o.null("per_gpu");
  }
  o.bytes("kv_offload_bytes", r.kv_offload_bytes);
  if (r.perf) {
    const speed& s = *r.perf;
    o.num("decode_tokens_per_s", s.decode_tokens_per_s)
        .num("decode_tokens_per_s_per_sequence", s.decode_tokens_per_s_per_sequence)
        .num("prefill_tokens_per_s", s.prefill_tokens_per_s).str("decode_bound", s.bound)
        .num("decode_step_seconds", s.step_seconds);
  } else {
    o.null("decode_tokens_per_s").null("decode_tokens_per_s_per_sequence").null("prefill_tokens_per_s");
  }
  json_object eff;
  eff.num("decode_bandwidth_efficiency", in.factors.decode).str("decode_source", in.factors.decode_source)
      .num("prefill_compute_efficiency", in.factors.prefill).str("prefill_source", in.factors.prefill_source);
  o.raw("efficiency", eff.done());
  if (in.target_tokens_per_s > 0) {
    o.num("target_tokens_per_s", in.target_tokens_per_s).raw("replicas_for_target", opt_num(r.replicas_for_target));
  }
  if (r.cost) {
    const cost_result& c = *r.cost;
    o.num("cost_per_month", c.cost_per_month).num("cost_per_million_tokens", c.cost_per_million_tokens)
        .raw("break_even_tokens_per_month", opt_num(c.break_even_tokens_per_month))
        .raw("break_even_utilization", opt_num(c.break_even_utilization))
        .num("cloud_usd_per_million_tokens", c.cloud_usd_per_million)
        .num("tokens_per_month", c.tokens_per_month).num("tokens_per_month_max", c.tokens_per_month_max);
    json_object parts;
    parts.num("servers", c.servers).num("capex_usd", c.capex_usd).num("capex_per_month", c.capex_per_month)
        .num("power_kw", c.power_kw).num("energy_per_month", c.energy_per_month)
        .num("rack_network_per_month", c.rack_per_month)
        .num("software_per_month", in.costs.software_usd_per_month)
        .num("staff_per_month", in.costs.staff_usd_per_month).num("utilization", in.costs.utilization);
    o.raw("cost", parts.done());
  } else {
    o.null("cost_per_month").null("cost_per_million_tokens").null("break_even_tokens_per_month");
  }
  std::string advice = "[";
  for (size_t i = 0; i < r.advice.size(); ++i) advice += (i ? ", " : "") + json_object::quote(r.advice[i]);
  o.raw("advice", advice + "]");
  return o.done() + "\n";
}

std::string render_table(const plan_result& r) {
  const plan_inputs& in = r.in;
  const model_spec& m = in.model;
  std::string t;
  auto row = [&t](const std::string& k, const std::string& v) { t += fmt::format("  {:<34} {}\n", k, v); };

  t += fmt::format("model {} ({}): {} parameters", m.name, m.source, si(r.params_total));
  if (m.experts > 1) t += fmt::format(", {} active per token ({} of {} experts)", si(r.params_active),
                                      m.experts_per_token, m.experts);
  t += fmt::format("\n  H={} L={} heads={} kv_heads={} head_dim={} I={} vocab={}{}\n\n", m.hidden, m.layers, m.heads,
                   m.kv_heads, m.head_dim, m.intermediate, m.vocab, m.tied_embeddings ? " (tied)" : "");
  t += "memory\n";
  std::string wfmt(name_of(in.weights));
  if (in.weights == weight_format::int4) wfmt += fmt::format(" (group {})", in.group);
  row("weights " + wfmt, fmt::format("{}  ({:.3f} bits/param)", gb(r.weights_bytes), r.weight_bits_per_param));
  row(fmt::format("KV cache {} per token", name_of(in.kv)), fmt::format("{:.1f} KiB", r.kv_bytes_per_token / 1024));
  row(fmt::format("KV cache {} x {} tokens", in.concurrency, in.context), gb(r.kv_bytes_total));
  if (in.paging.n > 1 && in.paging.prompt > 0)
    row(fmt::format("KV blocks, prompt shared by n={}", in.paging.n),
        fmt::format("{:.0f} x {} positions ({} prompt tokens)", r.kv_blocks, in.paging.block_size, in.paging.prompt));
  if (r.planned) {
    const layout& l = *r.planned;
    const per_device& d = r.on_device;
    row("total (all devices)", gb(r.total_bytes));
    t += fmt::format("\non {} x {} (TP {} x PP {}), per device\n", l.devices(), in.dev.name, l.tp, l.pp);
    row("weights", gb(d.weights));
    row("KV cache", gb(d.kv));
    row("activations", gb(d.activations));
    row("runtime overhead", gb(d.overhead));
    if (in.dev.is_cpu)
      row(fmt::format("allocator ({})", name_of(in.host_allocator)), gb(d.allocator));
    row("total / capacity", fmt::format("{} / {}", gb(d.total()), gb(d.capacity)));
    row("headroom", gb(d.headroom()));
    row("fits", r.fits ? "yes" : (r.runs ? "no: runs with the KV cache partly in host memory" : "no"));
    if (r.kv_offload_bytes > 0) row("KV in host memory", gb(r.kv_offload_bytes));
  }
  row("smallest fit", r.needed ? fmt::format("{} x {} (TP {} x PP {})", r.needed->devices(), in.dev.name,
                                             r.needed->tp, r.needed->pp)
                               : "none");
  if (r.perf) {
    const speed& s = *r.perf;
    t += "\nspeed\n";
    row("decode, aggregate", fmt::format("{:.1f} tokens/s ({} bound)", s.decode_tokens_per_s, s.bound));
    row("decode, per sequence", fmt::format("{:.2f} tokens/s ({:.1f} ms a step)",
                                            s.decode_tokens_per_s_per_sequence, s.step_seconds * 1e3));
    row("prefill, aggregate", fmt::format("{:.0f} tokens/s (compute bound)", s.prefill_tokens_per_s));
    row("bandwidth efficiency", fmt::format("{:.2f}, {}", in.factors.decode, in.factors.decode_source));
    row("compute efficiency", fmt::format("{:.2f}, {}", in.factors.prefill, in.factors.prefill_source));
    if (r.replicas_for_target)
      row(fmt::format("copies for {:.0f} tokens/s", in.target_tokens_per_s),
          fmt::format("{} ({} x {} in all)", *r.replicas_for_target,
                      *r.replicas_for_target * r.planned->devices(), in.dev.name));
  }
  if (r.cost) {
    const cost_result& c = *r.cost;
    t += "\ncost (USD)\n";
    row("hardware", fmt::format("{:.0f} ({} server{}), {:.0f}/month over {:g} years", c.capex_usd, c.servers,
                                c.servers == 1 ? "" : "s",
                                c.capex_per_month, in.costs.amortization_years));
    row("energy", fmt::format("{:.1f} kW with PUE {:g}: {:.0f}/month", c.power_kw, in.costs.pue, c.energy_per_month));
    row("rack, network, software, staff", fmt::format("{:.0f}/month", c.rack_per_month + in.costs.software_usd_per_month +
                                                                           in.costs.staff_usd_per_month));
    row("cost per month", fmt::format("{:.0f}", c.cost_per_month));
    row(fmt::format("tokens per month at {:.0f}% load", in.costs.utilization * 100), si(c.tokens_per_month));
    row("cost per million tokens", fmt::format("{:.3f}", c.cost_per_million_tokens));
    row("cloud per million tokens", fmt::format("{:.3f} ({:g}:1 input:output)", c.cloud_usd_per_million,
                                                in.costs.input_output_ratio));
    row("break-even volume", c.break_even_tokens_per_month
                                 ? fmt::format("{} tokens/month ({:.0f}% of capacity)", si(*c.break_even_tokens_per_month),
                                               *c.break_even_utilization * 100)
                                 : std::string("never: at full load one deployment still costs more than the cloud"));
  }
  if (!r.advice.empty()) {
    t += "\nnotes\n";
    for (const auto& a : r.advice) t += "  - " + a + "\n";
  }
  return t;
}

}  // namespace moat::planner
