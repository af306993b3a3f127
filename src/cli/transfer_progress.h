// TransferProgress: the progress line keel get and put draw on a terminal (stderr) while bytes
// move: done and total, percentage, rate and time left, redrawn at most ten times a second.
// Off when stderr is not a terminal (scripts, --json), so nothing but results reach a pipe.
// Thread safety: one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace keel::cli {

class TransferProgress {
 public:
  using Clock = std::chrono::steady_clock;
  // total: the whole file; start: bytes already there (resume), not counted in the rate.
  TransferProgress(std::string label, uint64_t total, uint64_t start, bool enabled);
  void update(uint64_t done);
  // Clears the line (the summary follows).
  void finish();
  // Seconds since construction, and the rate over the bytes this run moved.
  double seconds() const;

  // "1.5 GiB", "512.0 KiB", "17 B".
  static std::string bytes_text(double bytes);
  // "1:02:03", "2:05", "0:07".
  static std::string duration_text(double seconds);

 private:
  void draw(uint64_t done);

  std::string label_;
  uint64_t total_, start_;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point began_ = Clock::now();
  Clock::time_point last_draw_{};
};

}  // namespace keel::cli
