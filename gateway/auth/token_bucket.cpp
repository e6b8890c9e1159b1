#include "auth/token_bucket.h"

#include <algorithm>

namespace moat::auth {

void token_bucket::refill(clock_type::time_point now) {
  if (now <= last_) return;
  const double seconds = std::chrono::duration<double>(now - last_).count();
  level_ = std::min(capacity_, level_ + seconds * capacity_ / 60.0);
  last_ = now;
}

std::uint64_t token_bucket::remaining(clock_type::time_point now) {
  refill(now);
  return level_ > 0 ? static_cast<std::uint64_t>(level_) : 0;
}

bool token_bucket::try_take(double n, clock_type::time_point now) {
  if (unlimited()) return true;
  refill(now);
  if (level_ < n) return false;
  level_ -= n;
  return true;
}

void token_bucket::charge(double n, clock_type::time_point now) {
  if (unlimited()) return;
  refill(now);
  level_ -= n;
}

double token_bucket::seconds_until(double n, clock_type::time_point now) {
  if (unlimited()) return 0;
  refill(now);
  if (level_ >= n) return 0;
  return (n - level_) * 60.0 / capacity_;
}

void token_bucket::set_limit(std::uint64_t per_minute, clock_type::time_point now) {
  refill(now);
  const double fraction = capacity_ > 0 ? level_ / capacity_ : 1.0;
  capacity_ = double(per_minute);
  level_ = fraction * capacity_;
}

}  // namespace moat::auth
