// RateSchedule: when messages are due in fixed-rate mode. Message k is due at
// start + k / rate; latency is measured from that intended time, not from when the generator
// got round to sending, so a stalled server cannot hide its stall (coordinated omission).
// Thread safety: not thread-safe; one per loop.
#pragma once

#include <chrono>
#include <cstdint>

namespace keel::bench {

class RateSchedule {
 public:
  using Clock = std::chrono::steady_clock;

  RateSchedule(Clock::time_point start, double messages_per_s)
      : start_(start), interval_ns_(1e9 / messages_per_s) {}

  // How many messages are due by now and not yet taken; take them with next_intended().
  uint64_t due(Clock::time_point now) const noexcept {
    if (now < start_) return 0;
    double elapsed_ns = std::chrono::duration<double, std::nano>(now - start_).count();
    uint64_t total = static_cast<uint64_t>(elapsed_ns / interval_ns_) + 1;  // message 0 at start
    return total > issued_ ? total - issued_ : 0;
  }
  // The intended send time of the next message; advances the schedule.
  Clock::time_point next_intended() noexcept {
    auto offset = std::chrono::nanoseconds(static_cast<int64_t>(issued_ * interval_ns_));
    ++issued_;
    return start_ + offset;
  }
  uint64_t issued() const noexcept { return issued_; }

 private:
  Clock::time_point start_;
  double interval_ns_;
  uint64_t issued_ = 0;
};

}  // namespace keel::bench
