// Shared plumbing of the bench modes: start the pool, report progress about once a second until
// the end time, and the time conversions.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

#include "bench/load.h"
#include "keel/net/loop_pool.h"

namespace keel::bench {

inline std::chrono::steady_clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds));
}

// Part `index` of `total` split as evenly as possible into `parts` (the first ones get the extra).
inline size_t share_of(size_t total, size_t parts, size_t index) {
  return total / parts + (index < total % parts ? 1 : 0);
}

// Starts the pool and returns at end (or as soon as done() says so), calling progress with
// sample() about once a second.
inline void run_until(LoopPool& pool, std::chrono::steady_clock::time_point start,
                      std::chrono::steady_clock::time_point end, const ProgressFn& progress,
                      const std::function<Progress()>& sample,
                      const std::function<bool()>& done = {}) {
  using namespace std::chrono;
  pool.start();
  auto next_report = start + seconds(1);
  for (;;) {
    auto now = steady_clock::now();
    if (now >= end || (done && done())) break;
    auto wake = std::min({end, next_report, now + milliseconds(50)});
    std::this_thread::sleep_until(wake);
    if (steady_clock::now() >= next_report) {
      // Advance even without a progress display, or the wait above would stop sleeping.
      next_report += seconds(1);
      if (progress) {
        Progress p = sample();
        p.elapsed_s = duration<double>(steady_clock::now() - start).count();
        progress(p);
      }
    }
  }
}

}  // namespace keel::bench
