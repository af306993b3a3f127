// The hashed timing wheel: entries fire once, at their tick and not before, across rotations,
// with entries added while it fires; a jump of many rotations visits each entry once.
#include "keel/net/timer_wheel.h"

#include <gtest/gtest.h>

#include <map>
#include <utility>
#include <vector>

namespace keel {
namespace {

using Tick = TimerWheel::Tick;

ConnectionId id_of(uint32_t slot) {
  return ConnectionId(0, slot, 1);
}

struct Fired {
  std::vector<std::pair<uint32_t, Tick>> entries;  // (slot of the id, due)
  Tick at = 0;
  std::vector<Tick> when;  // the advance's tick for each entry
};

void advance(TimerWheel& wheel, Tick now, Fired& fired) {
  wheel.advance(now, [&](ConnectionId id, Tick due) {
    fired.entries.emplace_back(id.slot(), due);
    fired.when.push_back(now);
  });
}

TEST(TimerWheelTest, FiresEachEntryAtItsTickNotBefore) {
  TimerWheel wheel(8);
  wheel.schedule(id_of(1), 3);
  wheel.schedule(id_of(2), 5);
  wheel.schedule(id_of(3), 5);
  EXPECT_EQ(wheel.size(), 3u);
  Fired fired;
  advance(wheel, 2, fired);
  EXPECT_TRUE(fired.entries.empty());
  advance(wheel, 3, fired);
  ASSERT_EQ(fired.entries.size(), 1u);
  EXPECT_EQ(fired.entries[0], std::make_pair(1u, Tick{3}));
  advance(wheel, 4, fired);
  EXPECT_EQ(fired.entries.size(), 1u);
  advance(wheel, 5, fired);
  ASSERT_EQ(fired.entries.size(), 3u);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_TRUE(wheel.empty());
  // Nothing fires twice.
  advance(wheel, 40, fired);
  EXPECT_EQ(fired.entries.size(), 3u);
}

TEST(TimerWheelTest, EntriesRotationsAwayWaitInTheirSlot) {
  TimerWheel wheel(8);
  wheel.schedule(id_of(1), 2);
  wheel.schedule(id_of(2), 2 + 8);       // same slot, one rotation later
  wheel.schedule(id_of(3), 2 + 8 * 10);  // ten rotations later
  Fired fired;
  for (Tick t = 1; t <= 100; ++t) advance(wheel, t, fired);
  ASSERT_EQ(fired.entries.size(), 3u);
  EXPECT_EQ(fired.when[0], 2u);
  EXPECT_EQ(fired.when[1], 10u);
  EXPECT_EQ(fired.when[2], 82u);
  for (size_t i = 0; i < fired.entries.size(); ++i)
    EXPECT_EQ(fired.when[i], fired.entries[i].second) << "entry " << i << " fired late or early";
}

TEST(TimerWheelTest, AJumpOfManyRotationsFiresEveryDueEntryOnceAndKeepsTheRest) {
  TimerWheel wheel(16);
  std::map<uint32_t, Tick> due;
  for (uint32_t i = 1; i <= 200; ++i) {
    due[i] = i * 7;  // ticks 7 .. 1400, spread over every slot
    wheel.schedule(id_of(i), due[i]);
  }
  Fired fired;
  advance(wheel, 700, fired);  // 43 rotations at once
  EXPECT_EQ(fired.entries.size(), 100u);
  for (auto [slot, d] : fired.entries) {
    EXPECT_LE(d, 700u);
    EXPECT_EQ(due.at(slot), d);
  }
  EXPECT_EQ(wheel.size(), 100u);
  advance(wheel, 1400, fired);
  EXPECT_EQ(fired.entries.size(), 200u);
  std::map<uint32_t, int> times;
  for (auto [slot, d] : fired.entries) ++times[slot];
  EXPECT_EQ(times.size(), 200u);
  for (auto [slot, n] : times) EXPECT_EQ(n, 1) << "id " << slot;
}

TEST(TimerWheelTest, ATickAlreadyPassedFiresOnTheNextAdvance) {
  TimerWheel wheel(8);
  Fired fired;
  advance(wheel, 10, fired);
  EXPECT_EQ(wheel.processed(), 10u);
  wheel.schedule(id_of(1), 4);  // in the past
  advance(wheel, 10, fired);    // no tick passed: nothing runs
  EXPECT_TRUE(fired.entries.empty());
  advance(wheel, 11, fired);
  ASSERT_EQ(fired.entries.size(), 1u);
  EXPECT_EQ(fired.when[0], 11u);
}

TEST(TimerWheelTest, FireMayScheduleIntoTheSlotBeingVisited) {
  TimerWheel wheel(8);
  wheel.schedule(id_of(1), 3);
  std::vector<Tick> fired_at;
  for (Tick t = 1; t <= 30; ++t)
    wheel.advance(t, [&](ConnectionId id, Tick due) {
      fired_at.push_back(t);
      // Re-arm one rotation on: the same slot as the entry being fired.
      if (fired_at.size() < 3) wheel.schedule(id, due + 8);
    });
  EXPECT_EQ(fired_at, (std::vector<Tick>{3, 11, 19}));
  EXPECT_TRUE(wheel.empty());
}

TEST(TimerWheelTest, ResetMovesTheClockOnlyWhileEmpty) {
  TimerWheel wheel(8);
  wheel.reset(100);
  EXPECT_EQ(wheel.processed(), 100u);
  wheel.schedule(id_of(1), 105);
  wheel.reset(200);  // ignored: an entry is waiting
  EXPECT_EQ(wheel.processed(), 100u);
  Fired fired;
  advance(wheel, 105, fired);
  EXPECT_EQ(fired.entries.size(), 1u);
}

}  // namespace
}  // namespace keel
