// Backend-supplied /metrics text (the plugin ABI's optional `metrics` slot), checked before it
// joins the gateway's own families: a plugin that writes garbage loses its lines, never the
// scrape. Parsing keeps whole families; merging puts each family once in the output, with the
// samples of every backend under one HELP/TYPE pair (Prometheus requires that).
//
//   auto part = moat::metrics::parse_backend_exposition(text, "llama-8b", reserved);
//   for (const auto& p : part.problems) spdlog::warn("{}", p);   // no payloads in them
//   std::string out;
//   const moat::metrics::backend_exposition* parts[] = {&part};
//   moat::metrics::append_backend_families(out, parts);
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moat::metrics {

// A backend's text larger than this is dropped whole (a scrape must stay small and fast).
inline constexpr size_t backend_exposition_max_bytes = 1 << 20;

struct exposition_family {
  std::string name;                  // moat:... or moat_...
  std::string type;                  // gauge, counter, untyped, histogram, summary
  std::string help;                  // as written (already escaped by the backend)
  std::vector<std::string> samples;  // whole lines without '\n', model_name label first
};

struct backend_exposition {
  std::vector<exposition_family> families;
  // What was dropped and why, with line numbers; never the dropped text itself.
  std::vector<std::string> problems;
};

// True for names the gateway exports itself (a backend may not redeclare them).
using reserved_fn = std::function<bool(std::string_view family)>;

// Parses `text` (Prometheus text format 0.0.4) from the backend serving `model_name`. Keeps a
// family only when its name starts with moat: or moat_, is not reserved and is declared once
// (by a TYPE line before its samples); keeps a sample only when its name belongs to the family
// declared above it (name, or name_bucket/_sum/_count for histograms and summaries), its labels
// parse and do not include model_name, and its value is a number. Adds model_name="..." as
// the first label of every sample kept. Never throws on any input.
backend_exposition parse_backend_exposition(std::string_view text, std::string_view model_name,
                                            const reserved_fn& reserved = {});

// Appends the families of every part, each family once, in first-seen order. A family that a
// later part declares with another type than the first is left out for that part (counted in
// the returned number of dropped families).
size_t append_backend_families(std::string& out, std::span<const backend_exposition* const> parts);

}  // namespace moat::metrics
