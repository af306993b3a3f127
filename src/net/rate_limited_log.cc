#include "keel/rate_limited_log.h"

namespace keel {

RateLimitedLog::RateLimitedLog(Format format, Sink sink, std::chrono::milliseconds interval,
                               Now now)
    : format_(std::move(format)),
      sink_(std::move(sink)),
      interval_(interval),
      now_(std::move(now)) {}

void RateLimitedLog::add(uint64_t n) {
  if (n == 0) return;
  const Clock::time_point now = now_();
  std::lock_guard lock(mutex_);
  if (pending_ == 0) first_pending_ = now;
  pending_ += n;
  if (wrote_ && now - last_line_ < interval_) return;
  write_locked(now);
}

void RateLimitedLog::tick(bool force) {
  const Clock::time_point now = now_();
  std::lock_guard lock(mutex_);
  if (pending_ == 0) return;
  if (!force && wrote_ && now - last_line_ < interval_) return;
  write_locked(now);
}

uint64_t RateLimitedLog::pending() const {
  std::lock_guard lock(mutex_);
  return pending_;
}

// Under the lock, so lines come out in order and each event is in exactly one of them.
void RateLimitedLog::write_locked(Clock::time_point now) {
  const double seconds = std::chrono::duration<double>(now - first_pending_).count();
  const uint64_t count = pending_;
  pending_ = 0;
  last_line_ = now;
  wrote_ = true;
  if (sink_) sink_(format_(count, seconds));
}

}  // namespace keel
