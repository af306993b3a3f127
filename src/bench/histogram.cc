#include "bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace keel::bench {

namespace {
// Groups: group 0 holds exact values 0..127; group g >= 1 holds [128 << (g-1), 128 << g).
constexpr size_t kGroups = 64 - LatencyHistogram::kSubBucketBits + 1;
}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kGroups * kSubBuckets, 0) {}

size_t LatencyHistogram::bucket_of(uint64_t value) noexcept {
  if (value < kSubBuckets) return static_cast<size_t>(value);
  int top_bit = 63 - std::countl_zero(value);     // >= kSubBucketBits
  int shift = top_bit - kSubBucketBits;           // >= 0
  uint64_t sub = (value >> shift) - kSubBuckets;  // 0..127
  return static_cast<size_t>((shift + 1) * kSubBuckets + sub);
}

uint64_t LatencyHistogram::bucket_upper(size_t index) noexcept {
  if (index < kSubBuckets) return index;
  size_t group = index / kSubBuckets;
  uint64_t sub = index % kSubBuckets;
  int shift = static_cast<int>(group) - 1;
  uint64_t lower = (kSubBuckets + sub) << shift;
  return lower + ((uint64_t{1} << shift) - 1);
}

void LatencyHistogram::record(uint64_t value) {
  ++counts_[bucket_of(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  sum_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
}

uint64_t LatencyHistogram::percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::max<uint64_t>(rank, 1);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(bucket_upper(i), max_);
  }
  return max_;
}

}  // namespace keel::bench
