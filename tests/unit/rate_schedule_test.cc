#include <gtest/gtest.h>

#include "bench/schedule.h"

namespace keel::bench {
namespace {

using namespace std::chrono_literals;
using Clock = RateSchedule::Clock;

TEST(RateSchedule, NothingDueBeforeStartAndOneAtStart) {
  Clock::time_point t0 = Clock::now();
  RateSchedule s(t0, 1000);
  EXPECT_EQ(s.due(t0 - 1ms), 0u);
  EXPECT_EQ(s.due(t0), 1u);
}

TEST(RateSchedule, DueGrowsWithTimeAtTheRate) {
  Clock::time_point t0 = Clock::now();
  RateSchedule s(t0, 1000);  // one per millisecond
  EXPECT_EQ(s.due(t0 + 999us), 1u);
  EXPECT_EQ(s.due(t0 + 1ms), 2u);
  EXPECT_EQ(s.due(t0 + 1s - 1us), 1000u);
  EXPECT_EQ(s.due(t0 + 10s), 10001u);
}

TEST(RateSchedule, IntendedTimesAreEvenlySpacedAndTakingReducesDue) {
  Clock::time_point t0 = Clock::now();
  RateSchedule s(t0, 4000);  // every 250 us
  Clock::time_point now = t0 + 1ms;
  ASSERT_EQ(s.due(now), 5u);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(s.next_intended(), t0 + k * 250us);
  EXPECT_EQ(s.due(now), 0u);
  EXPECT_EQ(s.issued(), 5u);
  // A stalled sender catches up with intended times in the past, not "now":
  // that is what keeps latency honest (no coordinated omission).
  Clock::time_point late = t0 + 100ms;
  EXPECT_EQ(s.due(late), 396u);
  EXPECT_EQ(s.next_intended(), t0 + 1250us);
}

}  // namespace
}  // namespace keel::bench
