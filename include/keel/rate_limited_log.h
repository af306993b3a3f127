// RateLimitedLog: counts events of one kind (refused connections, failed handshakes, ...) and
// writes at most one line per interval about them, with how many there were, so a flood makes
// a line a second instead of a line per event:
//   "echo: refused 1532 connections in the last 1.0 s: over --max-connections (1000)".
// The first event after a quiet interval is written at once. Those that follow within the
// interval are counted and written by the first add() or tick() after it has passed, so call
// tick() now and then (once a second) to have the tail of a burst written too.
// Thread safety: any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace keel {

class RateLimitedLog {
 public:
  using Clock = std::chrono::steady_clock;
  // count: events since the last line; seconds: from the first of them to now (0 for a single
  // event written at once).
  using Format = std::function<std::string(uint64_t count, double seconds)>;
  using Sink = std::function<void(const std::string& line)>;
  using Now = std::function<Clock::time_point()>;

  RateLimitedLog(
      Format format, Sink sink, std::chrono::milliseconds interval = std::chrono::seconds(1),
      Now now = [] { return Clock::now(); });

  // Counts n events; writes a line if the interval since the last one has passed.
  void add(uint64_t n = 1);
  // Writes what was counted and not written yet, if the interval has passed (or, with force,
  // even if it has not: at shutdown).
  void tick(bool force = false);
  // Events counted and not written yet.
  uint64_t pending() const;

 private:
  void write_locked(Clock::time_point now);

  const Format format_;
  const Sink sink_;
  const Clock::duration interval_;
  const Now now_;
  mutable std::mutex mutex_;
  uint64_t pending_ = 0;
  Clock::time_point first_pending_{};
  Clock::time_point last_line_{};
  bool wrote_ = false;  // a line has been written (last_line_ is set)
};

}  // namespace keel
