// A token bucket refilled continuously: `per_minute` tokens per 60 s, holding at most
// `per_minute`. Time is passed in, so tests drive it with a fake clock. Not thread-safe: the
// key store guards each key's buckets with that key's mutex.
#pragma once

#include <chrono>
#include <cstdint>

namespace moat::auth {

using clock_type = std::chrono::steady_clock;

class token_bucket {
 public:
  token_bucket() = default;
  token_bucket(std::uint64_t per_minute, clock_type::time_point now)
      : capacity_(double(per_minute)), level_(double(per_minute)), last_(now) {}

  bool unlimited() const { return capacity_ <= 0; }
  std::uint64_t limit() const { return static_cast<std::uint64_t>(capacity_); }
  // Whole tokens available now (0 while in debt).
  std::uint64_t remaining(clock_type::time_point now);
  // Takes n if at least n are there.
  bool try_take(double n, clock_type::time_point now);
  // Takes n unconditionally; the level may go negative (usage known only after a request).
  void charge(double n, clock_type::time_point now);
  // Seconds until at least n are available (0 when already).
  double seconds_until(double n, clock_type::time_point now);
  // Seconds until the bucket is full again.
  double seconds_until_full(clock_type::time_point now) { return seconds_until(capacity_, now); }
  // New limit from a reload: keeps the fraction used so a SIGHUP does not reset anyone's budget.
  void set_limit(std::uint64_t per_minute, clock_type::time_point now);

 private:
  void refill(clock_type::time_point now);
  double capacity_ = 0;
  double level_ = 0;
  clock_type::time_point last_{};
};

}  // namespace moat::auth
