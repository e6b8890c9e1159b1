#include "metrics/exposition.h"

#include <cerrno>
#include <cstdlib>
#include <unordered_set>
#include <vector>

#include "metrics/instruments.h"

namespace moat::metrics {

namespace {

constexpr size_t max_problems = 8;  // enough to diagnose, small enough for one log line each

bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }
bool label_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool label_char(char c) { return label_start(c) || (c >= '0' && c <= '9'); }

bool valid_metric_name(std::string_view s) {
  if (s.empty() || !name_start(s[0])) return false;
  for (char c : s) {
    if (!name_char(c)) return false;
  }
  return true;
}

bool valid_type(std::string_view t) {
  return t == "gauge" || t == "counter" || t == "untyped" || t == "histogram" || t == "summary";
}

// The sample names a family of `type` may contain.
bool belongs(std::string_view sample, const exposition_family& f) {
  if (sample == f.name) return f.type != "histogram";  // a histogram has only suffixed series
  if (sample.size() <= f.name.size() || sample.substr(0, f.name.size()) != f.name) return false;
  const std::string_view suffix = sample.substr(f.name.size());
  if (f.type == "histogram") return suffix == "_bucket" || suffix == "_sum" || suffix == "_count";
  if (f.type == "summary") return suffix == "_sum" || suffix == "_count";
  return false;
}

// `{a="x",b="y\"z"}` from s[pos] (which is '{'); returns the inside without braces and moves
// pos past '}', or false. A label named model_name is refused: the host sets that one.
bool parse_labels(std::string_view s, size_t& pos, std::string_view& inside, std::string& why) {
  const size_t open = pos++;
  bool expect_label = true;
  std::vector<std::string_view> seen;  // a repeated label name makes the scrape invalid
  while (pos < s.size()) {
    if (s[pos] == '}') {
      inside = s.substr(open + 1, pos - open - 1);
      ++pos;
      return true;
    }
    if (!expect_label) {
      if (s[pos] != ',') break;
      ++pos;
      expect_label = true;
      continue;
    }
    const size_t name_begin = pos;
    if (!label_start(s[pos])) break;
    while (pos < s.size() && label_char(s[pos])) ++pos;
    const std::string_view label = s.substr(name_begin, pos - name_begin);
    if (label == "model_name") {
      why = "label model_name is set by the host";
      return false;
    }
    for (const auto& l : seen) {
      if (l == label) {
        why = "label " + std::string(label) + " repeated";
        return false;
      }
    }
    seen.push_back(label);
    if (pos + 1 >= s.size() || s[pos] != '=' || s[pos + 1] != '"') break;
    pos += 2;
    bool closed = false;
    while (pos < s.size()) {
      const char c = s[pos++];
      if (c == '\\') {
        if (pos >= s.size() || (s[pos] != '\\' && s[pos] != '"' && s[pos] != 'n')) {
          why = "bad escape in a label value";
          return false;
        }
        ++pos;
      } else if (c == '"') {
        closed = true;
        break;
      }
    }
    if (!closed) break;
    expect_label = false;
  }
  why = "labels do not parse";
  return false;
}

bool valid_value(std::string_view v) {
  if (v == "NaN" || v == "+Inf" || v == "-Inf" || v == "Inf") return true;
  if (v.empty() || v.size() > 64) return false;
  const std::string copy(v);
  char* end = nullptr;
  errno = 0;
  std::strtod(copy.c_str(), &end);
  // strtod also reads "nan(...)", "infinity" and hex floats; accept only what it read whole and
  // what starts like a decimal number.
  const char c = copy[0];
  const bool decimal_start = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.';
  return decimal_start && end == copy.c_str() + copy.size() && copy.find_first_of("xXnN") == std::string::npos;
}

bool valid_timestamp(std::string_view t) {
  if (t.empty() || t.size() > 20) return false;
  size_t i = t[0] == '-' ? 1 : 0;
  if (i == t.size()) return false;
  for (; i < t.size(); ++i) {
    if (t[i] < '0' || t[i] > '9') return false;
  }
  return true;
}

class parser {
 public:
  parser(std::string_view model_name, const reserved_fn& reserved) : reserved_(reserved) {
    model_label_ = "model_name=\"";
    append_label_value(model_label_, model_name);
    model_label_ += "\"";
  }

  backend_exposition run(std::string_view text) {
    if (text.size() > backend_exposition_max_bytes) {
      problem(0, "text of " + std::to_string(text.size()) + " bytes is over the limit of " +
                     std::to_string(backend_exposition_max_bytes) + "; all of it dropped");
      return std::move(out_);
    }
    size_t line_no = 0;
    while (!text.empty()) {
      const size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      if (line[0] == '#') {
        comment(line_no, line);
      } else {
        sample(line_no, line);
      }
    }
    // A family with a HELP line but no TYPE has no samples (they were refused); leave it out.
    std::erase_if(out_.families, [&](const exposition_family& f) {
      if (!f.type.empty()) return false;
      problem(0, "family " + f.name + " has no TYPE line");
      return true;
    });
    return std::move(out_);
  }

 private:
  void problem(size_t line_no, std::string why) {
    if (out_.problems.size() < max_problems) {
      out_.problems.push_back(line_no ? "line " + std::to_string(line_no) + ": " + why : why);
    }
  }

  exposition_family* find(std::string_view name) {
    for (auto& f : out_.families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }

  // Accepts a new family name or says why not.
  bool admissible(size_t line_no, std::string_view name) {
    if (!valid_metric_name(name)) {
      problem(line_no, "not a metric name");
      return false;
    }
    if (name.substr(0, 5) != "moat:" && name.substr(0, 5) != "moat_") {
      problem(line_no, "family " + std::string(name) + " does not start with moat: or moat_");
      return false;
    }
    if (reserved_ && reserved_(name)) {
      problem(line_no, "family " + std::string(name) + " is exported by the gateway itself");
      return false;
    }
    return true;
  }

  void comment(size_t line_no, std::string_view line) {
    const bool is_help = line.substr(0, 7) == "# HELP ";
    const bool is_type = line.substr(0, 7) == "# TYPE ";
    if (!is_help && !is_type) return;  // a plain comment
    std::string_view rest = line.substr(7);
    const size_t sp = rest.find(' ');
    const std::string_view name = rest.substr(0, sp);
    const std::string_view arg = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    if (rejected_.count(std::string(name))) return;  // already reported
    exposition_family* f = find(name);
    if (f == nullptr) {
      // A family opens with its first HELP or TYPE line.
      if (!admissible(line_no, name)) {
        rejected_.insert(std::string(name));
        current_ = nullptr;
        return;
      }
      out_.families.push_back(exposition_family{std::string(name), "", "", {}});
      f = &out_.families.back();
    } else if (f != current_ || !f->samples.empty()) {
      // Declared again after other lines or after its samples: each family once.
      problem(line_no, "family " + std::string(name) + " is declared twice; the second declaration dropped");
      current_ = nullptr;
      return;
    }
    current_ = f;
    if (is_help) {
      if (!f->help.empty()) {
        problem(line_no, "second HELP for " + std::string(name));
        return;
      }
      f->help = std::string(arg);
    } else {
      if (!f->type.empty() || !valid_type(arg)) {
        problem(line_no, f->type.empty() ? "unknown TYPE for " + std::string(name)
                                         : "second TYPE for " + std::string(name));
        if (f->type.empty()) drop_current();
        return;
      }
      f->type = std::string(arg);
    }
  }

  void drop_current() {
    if (current_ == nullptr) return;
    rejected_.insert(current_->name);
    out_.families.erase(out_.families.begin() + (current_ - out_.families.data()));
    current_ = nullptr;
  }

  void sample(size_t line_no, std::string_view line) {
    size_t pos = 0;
    while (pos < line.size() && name_char(line[pos])) ++pos;
    const std::string_view name = line.substr(0, pos);
    if (current_ == nullptr || current_->type.empty() || !belongs(name, *current_)) {
      problem(line_no, "sample of " + (valid_metric_name(name) ? std::string(name) : std::string("an invalid name")) +
                           " outside a declared family");
      return;
    }
    std::string_view labels;
    if (pos < line.size() && line[pos] == '{') {
      std::string why;
      if (!parse_labels(line, pos, labels, why)) {
        problem(line_no, why);
        return;
      }
    }
    if (pos >= line.size() || line[pos] != ' ') {
      problem(line_no, "no value");
      return;
    }
    while (pos < line.size() && line[pos] == ' ') ++pos;
    std::string_view rest = line.substr(pos);
    const size_t sp = rest.find(' ');
    const std::string_view value = rest.substr(0, sp);
    const std::string_view timestamp = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    if (!valid_value(value) || (sp != std::string_view::npos && !valid_timestamp(timestamp))) {
      problem(line_no, "value or timestamp is not a number");
      return;
    }
    std::string out(name);
    out += '{';
    out += model_label_;
    if (!labels.empty()) {
      out += ',';
      out += labels;
      if (out.back() == ',') out.pop_back();  // a trailing comma is allowed in the format
    }
    out += '}';
    // The same series twice would make Prometheus reject the whole scrape.
    if (!series_.insert(out).second) {
      problem(line_no, "series " + std::string(name) + " repeated");
      return;
    }
    out += ' ';
    out += rest;
    current_->samples.push_back(std::move(out));
  }

  backend_exposition out_;
  std::string model_label_;
  const reserved_fn& reserved_;
  exposition_family* current_ = nullptr;
  std::unordered_set<std::string> rejected_;  // family names refused once, not reported again
  std::unordered_set<std::string> series_;    // name{labels} already kept
};

}  // namespace

backend_exposition parse_backend_exposition(std::string_view text, std::string_view model_name,
                                            const reserved_fn& reserved) {
  try {
    return parser(model_name, reserved).run(text);
  } catch (...) {
    // Allocation failure is the only way here; a scrape without the backend's lines is fine.
    backend_exposition out;
    out.problems.push_back("backend metrics dropped: out of memory while parsing");
    return out;
  }
}

size_t append_backend_families(std::string& out, std::span<const backend_exposition* const> parts) {
  struct merged {
    const exposition_family* first;
    std::vector<const exposition_family*> all;
  };
  std::vector<merged> families;
  size_t dropped = 0;
  for (const auto* part : parts) {
    if (part == nullptr) continue;
    for (const auto& f : part->families) {
      merged* m = nullptr;
      for (auto& candidate : families) {
        if (candidate.first->name == f.name) m = &candidate;
      }
      if (m == nullptr) {
        families.push_back(merged{&f, {&f}});
      } else if (m->first->type != f.type) {
        ++dropped;
      } else {
        m->all.push_back(&f);
      }
    }
  }
  for (const auto& m : families) {
    if (!m.first->help.empty()) out.append("# HELP ").append(m.first->name).append(" ").append(m.first->help).append("\n");
    out.append("# TYPE ").append(m.first->name).append(" ").append(m.first->type).append("\n");
    for (const auto* f : m.all) {
      for (const auto& s : f->samples) out.append(s).append("\n");
    }
  }
  return dropped;
}

}  // namespace moat::metrics
