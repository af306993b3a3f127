// Flood control's pieces with an injected clock: the token bucket, the BYTES/S[,BURST] parser,
// and InputBudget's pause / timer / resume moves against a recording Server.
#include "services/common/input_budget.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "keel/error.h"

namespace keel {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;

constexpr InputRate kRate{1000, 4000};  // 1000 bytes/s, bursts of 4000

TEST(TokenBucket, StartsFullAndRefillsAtTheRateUpToTheBurst) {
  Clock::time_point t0;
  TokenBucket b(kRate, t0);
  EXPECT_DOUBLE_EQ(b.available(t0), 4000);
  b.take(4000, t0);
  EXPECT_DOUBLE_EQ(b.available(t0), 0);
  EXPECT_EQ(b.time_to_clear(t0), 0ms);
  EXPECT_NEAR(b.available(t0 + 500ms), 500, 1e-6);
  EXPECT_NEAR(b.available(t0 + 3s), 3000, 1e-6);
  EXPECT_DOUBLE_EQ(b.available(t0 + 1h), 4000);  // never more than the burst
}

TEST(TokenBucket, AMessageOverWhatIsLeftIsTakenWholeAndRepaidAtTheRate) {
  Clock::time_point t0;
  TokenBucket b(kRate, t0);
  b.take(6500, t0);  // 2500 in debt
  EXPECT_DOUBLE_EQ(b.available(t0), -2500);
  EXPECT_EQ(b.time_to_clear(t0), 2500ms);
  EXPECT_EQ(b.time_to_clear(t0 + 1s), 1500ms);
  EXPECT_EQ(b.time_to_clear(t0 + 2499ms + 500us), 1ms);  // rounded up, never 0 while in debt
  EXPECT_EQ(b.time_to_clear(t0 + 2500ms), 0ms);
  EXPECT_GE(b.available(t0 + 2500ms), 0);
}

TEST(TokenBucket, SustainedTakingIsBoundedByBurstPlusRateTimesTime) {
  Clock::time_point t = {};
  TokenBucket b(kRate, t);
  uint64_t taken = 0;
  // A greedy sender takes whenever the bucket is not in debt, 300 bytes at a time.
  for (int ms = 0; ms <= 10'000; ++ms, t += 1ms) {
    while (b.available(t) >= 0) {
      b.take(300, t);
      taken += 300;
    }
  }
  // 10 s at 1000/s plus the 4000 burst, plus at most one message of debt.
  EXPECT_LE(taken, 4000u + 10'000u + 300u);
  EXPECT_GE(taken, 4000u + 10'000u - 300u);
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  Clock::time_point t0 = Clock::time_point{} + 10s;
  TokenBucket b(kRate, t0);
  b.take(4000, t0);
  EXPECT_DOUBLE_EQ(b.available(t0 - 5s), 0);
}

TEST(InputRateParse, AcceptsBytesSuffixesAndABurst) {
  InputRate r = parse_input_rate("65536");
  EXPECT_EQ(r.bytes_per_second, 65536u);
  EXPECT_EQ(r.burst_bytes, 65536u);  // one second's worth
  r = parse_input_rate("64k/s,256k");
  EXPECT_EQ(r.bytes_per_second, 64u << 10);
  EXPECT_EQ(r.burst_bytes, 256u << 10);
  r = parse_input_rate("1M,4m");
  EXPECT_EQ(r.bytes_per_second, 1u << 20);
  EXPECT_EQ(r.burst_bytes, 4u << 20);
  EXPECT_EQ(parse_input_rate("2g").bytes_per_second, uint64_t{2} << 30);
  EXPECT_EQ(parse_input_rate("1000/s,1500").to_string(), "1000/s,1500");
  EXPECT_EQ(parse_input_rate("64k/s,256k").to_string(), "64k/s,256k");
  EXPECT_FALSE(parse_input_rate("0").enabled());
  EXPECT_FALSE(parse_input_rate("off").enabled());
  EXPECT_EQ(parse_input_rate("off").to_string(), "off");
}

TEST(InputRateParse, RejectsMalformedTextNamingIt) {
  for (const char* bad : {"", "k", "-1", "1.5k", "64kb", "64k/m", "64k,", ",64k", "64k,0", "0,64k",
                          "1,2,3", "99999999999999999", "9999999999g", " 64k"}) {
    try {
      parse_input_rate(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + std::string(bad) + "'"), std::string::npos)
          << e.what();
    }
  }
}

// Records what InputBudget asks of the engine; timers run when the test says.
class RecordingServer final : public Server {
 public:
  bool send(ConnectionId, std::string_view) override { return true; }
  bool shutdown(ConnectionId) override { return true; }
  bool close(ConnectionId, std::string_view) override { return true; }
  bool close_gracefully(ConnectionId, std::string_view, std::string_view,
                        std::chrono::milliseconds) override {
    return true;
  }
  bool pause_reading(ConnectionId) override {
    paused = true;
    ++pause_calls;
    return true;
  }
  bool resume_reading(ConnectionId) override {
    paused = false;
    return true;
  }
  TimerId start_timer(ConnectionId, std::chrono::milliseconds delay, TimerTask fn) override {
    if (refuse_timers) return 0;
    delays.push_back(delay);
    pending = std::move(fn);
    return ++last_timer;
  }
  void cancel_timer(ConnectionId, TimerId) override {}

  // Runs the pending timer task (as the engine would once its delay passed).
  void fire() {
    TimerTask fn = std::move(pending);
    pending = nullptr;
    ASSERT_TRUE(fn);
    fn();
  }

  bool paused = false;
  int pause_calls = 0;
  bool refuse_timers = false;
  std::vector<std::chrono::milliseconds> delays;
  TimerTask pending;
  TimerId last_timer = 0;
};

TEST(InputBudget, UnderBudgetNothingIsPaused) {
  Clock::time_point t = {};
  RecordingServer server;
  InputBudget budget(kRate, t);
  ConnectionId id(0, 1, 1);
  int wakes_built = 0;
  auto make_wake = [&] {
    ++wakes_built;
    return Server::TimerTask([] {});
  };
  budget.charge(server, id, 4000, t, make_wake);  // the whole burst
  for (int i = 0; i < 100; ++i) {                 // then exactly the rate
    t += 100ms;
    budget.charge(server, id, 100, t, make_wake);
  }
  EXPECT_FALSE(server.paused);
  EXPECT_EQ(server.pause_calls, 0);
  EXPECT_EQ(wakes_built, 0);
  EXPECT_EQ(budget.pauses(), 0u);
}

TEST(InputBudget, OverBudgetPausesUntilTheDebtIsPaidThenResumes) {
  Clock::time_point t = {};
  RecordingServer server;
  InputBudget budget(kRate, t);
  ConnectionId id(0, 7, 1);
  Clock::time_point now = t;
  std::function<Server::TimerTask()> make_wake = [&]() -> Server::TimerTask {
    return [&] { budget.on_wake(server, id, now, make_wake()); };
  };
  budget.charge(server, id, 5000, now, make_wake);  // 1000 over
  EXPECT_TRUE(server.paused);
  EXPECT_TRUE(budget.paused());
  EXPECT_EQ(budget.pauses(), 1u);
  ASSERT_EQ(server.delays.size(), 1u);
  EXPECT_EQ(server.delays.back(), 1000ms);
  // More input read while paused (already in flight) deepens the debt, with no second pause.
  budget.charge(server, id, 500, now, make_wake);
  EXPECT_EQ(budget.pauses(), 1u);
  EXPECT_EQ(server.delays.size(), 1u);
  // The timer fires early (clocks differ): still in debt, so it waits again for the rest.
  now = t + 1000ms;
  server.fire();
  EXPECT_TRUE(server.paused);
  ASSERT_EQ(server.delays.size(), 2u);
  EXPECT_EQ(server.delays.back(), 500ms);
  now = t + 1500ms;
  server.fire();
  EXPECT_FALSE(server.paused);
  EXPECT_FALSE(budget.paused());
  EXPECT_FALSE(server.pending);
  // Over again later: a second pause.
  budget.charge(server, id, 10, now, make_wake);
  EXPECT_TRUE(server.paused);
  EXPECT_EQ(budget.pauses(), 2u);
}

TEST(InputBudget, WithoutATimerItNeverStaysPaused) {
  Clock::time_point t = {};
  RecordingServer server;
  server.refuse_timers = true;  // the connection is going away
  InputBudget budget(kRate, t);
  budget.charge(server, ConnectionId(0, 3, 1), 9000, t, [] { return Server::TimerTask([] {}); });
  EXPECT_FALSE(server.paused);
  EXPECT_FALSE(budget.paused());
}

TEST(InputBudget, DisabledDoesNothing) {
  Clock::time_point t = {};
  RecordingServer server;
  InputBudget budget(InputRate{}, t);
  EXPECT_FALSE(budget.enabled());
  budget.charge(server, ConnectionId(0, 3, 1), 1u << 30, t,
                [] { return Server::TimerTask([] {}); });
  EXPECT_FALSE(server.paused);
  EXPECT_EQ(budget.pauses(), 0u);
}

}  // namespace
}  // namespace keel
