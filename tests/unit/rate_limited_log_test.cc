// RateLimitedLog with an injected clock: the first event is written at once, later ones within
// the interval are counted into one line, tick() writes the tail of a burst once the interval
// has passed, and every event is in exactly one line.
#include "keel/rate_limited_log.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace keel {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  RateLimitedLog::Clock::time_point now{std::chrono::hours(1)};
  std::vector<std::string> lines;
  uint64_t logged = 0;
  RateLimitedLog log{[this](uint64_t count, double seconds) {
                       logged += count;
                       char text[64];
                       std::snprintf(text, sizeof text, "%llu in %.1f s",
                                     static_cast<unsigned long long>(count), seconds);
                       return std::string(text);
                     },
                     [this](const std::string& line) { lines.push_back(line); }, 1000ms,
                     [this] { return now; }};
};

TEST(RateLimitedLog, FirstEventIsWrittenAtOnce) {
  Fixture f;
  f.log.add();
  ASSERT_EQ(f.lines.size(), 1u);
  EXPECT_EQ(f.lines[0], "1 in 0.0 s");
  EXPECT_EQ(f.log.pending(), 0u);
}

TEST(RateLimitedLog, AFloodMakesOneLineAnIntervalWithItsCount) {
  Fixture f;
  f.log.add();  // written at once
  for (int i = 0; i < 1531; ++i) {
    f.now += 500us;  // 1531 more within the next 0.77 s
    f.log.add();
  }
  EXPECT_EQ(f.lines.size(), 1u) << "no line before the interval has passed";
  EXPECT_EQ(f.log.pending(), 1531u);
  f.now += 300ms;  // 1.07 s after the first line
  f.log.add();
  ASSERT_EQ(f.lines.size(), 2u);
  EXPECT_EQ(f.lines[1], "1532 in 1.1 s");
  EXPECT_EQ(f.logged, 1533u);
}

TEST(RateLimitedLog, TickWritesTheTailOnceTheIntervalHasPassed) {
  Fixture f;
  f.log.add();
  f.now += 100ms;
  f.log.add(41);
  f.log.tick();
  EXPECT_EQ(f.lines.size(), 1u) << "tick before the interval has passed writes nothing";
  f.now += 900ms;
  f.log.tick();
  ASSERT_EQ(f.lines.size(), 2u);
  EXPECT_EQ(f.lines[1], "41 in 0.9 s");
  f.now += 5s;
  f.log.tick();
  EXPECT_EQ(f.lines.size(), 2u) << "nothing pending, nothing written";
}

TEST(RateLimitedLog, ForcedTickWritesAtOnce) {
  Fixture f;
  f.log.add();
  f.now += 10ms;
  f.log.add(7);
  f.log.tick(true);
  ASSERT_EQ(f.lines.size(), 2u);
  EXPECT_EQ(f.lines[1], "7 in 0.0 s");
  EXPECT_EQ(f.log.pending(), 0u);
}

TEST(RateLimitedLog, AfterAQuietIntervalTheNextEventIsWrittenAtOnce) {
  Fixture f;
  f.log.add();
  f.now += 3s;
  f.log.add();
  ASSERT_EQ(f.lines.size(), 2u);
  EXPECT_EQ(f.lines[1], "1 in 0.0 s");
}

}  // namespace
}  // namespace keel
