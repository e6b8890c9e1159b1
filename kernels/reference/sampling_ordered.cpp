// reference::sample_ordered: see reference.h. Written as the passes a device block would run
// (counts and masses over thresholds found by bisection), so a kernel port is line for line.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/reference/reference.h"

namespace moat::kernels::reference {

namespace {

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
float float_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// A prefix of the order (e desc, index asc): every e > v, and the e == v with index <= c.
struct prefix {
  float v = 0.0f;
  int32_t c = std::numeric_limits<int32_t>::max();
  bool has(float e, int32_t i) const { return e > v || (e == v && i <= c); }
};

class row_sampler {
 public:
  row_sampler(const std::vector<float>& e) : e_(e), n_(static_cast<int32_t>(e.size())) {}

  // Count and mass of the members of `within` with e >= t (pass over the row).
  int64_t count_ge(float t, const prefix& within) const {
    int64_t k = 0;
    for (int32_t i = 0; i < n_; ++i) k += (e_[i] >= t && within.has(e_[i], i)) ? 1 : 0;
    return k;
  }
  double mass_ge(float t, const prefix& within) const {
    double m = 0;
    for (int32_t i = 0; i < n_; ++i)
      if (e_[i] >= t && within.has(e_[i], i)) m += e_[i];
    return m;
  }
  int64_t count_gt(float t, const prefix& within) const {
    int64_t k = 0;
    for (int32_t i = 0; i < n_; ++i) k += (e_[i] > t && within.has(e_[i], i)) ? 1 : 0;
    return k;
  }
  double mass_gt(float t, const prefix& within) const {
    double m = 0;
    for (int32_t i = 0; i < n_; ++i)
      if (e_[i] > t && within.has(e_[i], i)) m += e_[i];
    return m;
  }

  // The largest t in [0, 1] (e is in [0, 1]) with pred(t); pred is true at 0 and monotone.
  // Non-negative floats order like their bit patterns: 31 halvings find t exactly.
  template <class Pred>
  static float largest(Pred pred) {
    uint32_t lo = 0, hi = bits_of(1.0f);
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      if (pred(float_of(mid))) lo = mid;
      else hi = mid - 1;
    }
    return float_of(lo);
  }

  // The index of the j-th (0-based) member of `within` with e == v, in index order: the
  // smallest c with j + 1 such members at indices <= c (bisection on c).
  int32_t tie_index(float v, int64_t j, const prefix& within) const {
    int32_t lo = 0, hi = n_ - 1;
    while (lo < hi) {
      const int32_t mid = lo + (hi - lo) / 2;
      int64_t k = 0;
      for (int32_t i = 0; i <= mid; ++i) k += (e_[i] == v && within.has(e_[i], i)) ? 1 : 0;
      if (k >= j + 1) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  // The first `k` members of `within` in order (k >= 1, at most its size).
  prefix first(int64_t k, const prefix& within) const {
    const float v = largest([&](float t) { return count_ge(t, within) >= k; });
    const int64_t above = count_gt(v, within);
    return prefix{v, tie_index(v, k - above - 1, within)};
  }

  // The shortest prefix of `within` whose mass reaches `limit` (all of it when none does).
  prefix reaching(double limit, const prefix& within) const {
    if (mass_ge(0.0f, within) < limit) return within;
    const float v = largest([&](float t) { return mass_ge(t, within) >= limit; });
    const double above = mass_gt(v, within);
    const int64_t ties = count_ge(v, within) - count_gt(v, within);
    // Ties all weigh v: the first t of them with above + t * v >= limit (at least one).
    int64_t t = v > 0 ? static_cast<int64_t>(std::ceil((limit - above) / v)) : 1;
    t = std::max<int64_t>(1, std::min(t, ties));
    return prefix{v, tie_index(v, t - 1, within)};
  }

  // The member of `within` where the running mass in order first exceeds target.
  int32_t pick(double target, const prefix& within, int32_t fallback) const {
    if (!(mass_ge(0.0f, within) > target)) return fallback;
    const float v = largest([&](float t) { return mass_ge(t, within) > target; });
    const double above = mass_gt(v, within);
    const int64_t ties = count_ge(v, within) - count_gt(v, within);
    int64_t j = v > 0 ? static_cast<int64_t>(std::floor((target - above) / v)) : 0;
    j = std::max<int64_t>(0, std::min(j, ties - 1));
    return tie_index(v, j, within);
  }

 private:
  const std::vector<float>& e_;
  int32_t n_;
};

int32_t first_max(const float* l, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (l[i] > l[best]) best = i;
  return best;
}

}  // namespace

void sample_ordered(const float* logits, int32_t n_rows, int32_t vocab, const sampling_params& p, const double* u,
                    int32_t* out) {
  std::vector<float> e(static_cast<size_t>(vocab));
  for (int32_t r = 0; r < n_rows; ++r) {
    const float* l = logits + static_cast<int64_t>(r) * vocab;
    const int32_t best = first_max(l, vocab);
    if (p.temperature < k_greedy_temperature) {
      out[r] = best;
      continue;
    }
    const float inv_t = 1.0f / p.temperature;
    float max = -std::numeric_limits<float>::infinity();
    for (int32_t i = 0; i < vocab; ++i) max = std::max(max, l[i] * inv_t);
    double sum = 0;
    for (int32_t i = 0; i < vocab; ++i) {
      e[i] = std::exp(l[i] * inv_t - max);
      sum += e[i];
    }
    const bool top_k = p.top_k > 0 && p.top_k < vocab;
    const bool top_p = p.top_p > 0.0f && p.top_p < 1.0f;
    const bool min_p = p.min_p > 0.0f;
    if (!top_k && !top_p && !min_p) {
      double target = u[r] * sum;
      int32_t pick = best;
      for (int32_t i = 0; i < vocab; ++i) {
        target -= e[i];
        if (target < 0.0) {
          pick = i;
          break;
        }
      }
      out[r] = pick;
      continue;
    }
    const row_sampler rs(e);
    prefix kept{-1.0f, 0};  // everything: every e > -1
    if (top_k) kept = rs.first(p.top_k, kept);
    if (min_p) {
      // e of the mode is exp(0) = 1, so the threshold is min_p itself; the mode always stays.
      const int64_t at_least = std::max<int64_t>(1, rs.count_ge(p.min_p * 1.0f, kept));
      kept = rs.first(std::min(at_least, rs.count_ge(0.0f, kept)), kept);
    }
    if (top_p) kept = rs.reaching(static_cast<double>(p.top_p) * rs.mass_ge(0.0f, kept), kept);
    const int32_t mode = rs.first(1, kept).c;
    out[r] = rs.pick(u[r] * rs.mass_ge(0.0f, kept), kept, mode);
  }
}

}  // namespace moat::kernels::reference
