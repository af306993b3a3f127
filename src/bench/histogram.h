// LatencyHistogram: log-linear buckets (HdrHistogram's idea, written for keel): values below
// 128 are exact, above that each power of two is split into 128 buckets, so any recorded value
// is known to within 1/128 (< 0.8%). Fixed memory (~60 KiB), O(1) record, mergeable.
// Thread safety: not thread-safe; one per thread, merge() at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace keel::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;

  LatencyHistogram();

  void record(uint64_t value);
  void merge(const LatencyHistogram& other);
  void reset();

  uint64_t count() const noexcept { return count_; }
  uint64_t min() const noexcept { return count_ ? min_ : 0; }
  uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? static_cast<double>(sum_) / count_ : 0; }
  // The value at or below which p percent (0..100) of recorded values fall: the upper edge of
  // the bucket holding that rank, never above max(). 0 when empty.
  uint64_t percentile(double p) const noexcept;

  static size_t bucket_of(uint64_t value) noexcept;
  static uint64_t bucket_upper(size_t index) noexcept;

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  unsigned __int128 sum_ = 0;
};

}  // namespace keel::bench
