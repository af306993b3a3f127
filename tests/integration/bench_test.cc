// keel bench's load generators against an in-process echo server.
#include <unistd.h>

#include <future>

#include "bench/load.h"
#include "integration/echo_fixture.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

class BenchTest : public EchoServerTest {};

TEST_F(BenchTest, PingpongCountsEveryRoundTrip) {
  start({}, 1);
  bench::PingpongOptions o;
  o.target = endpoint();
  o.conns = 4;
  o.size = 1000;
  o.pipeline = 2;
  o.duration_s = 0.3;
  bench::PingpongResult r = bench::run_pingpong(o);
  EXPECT_EQ(r.connected, 4u);
  EXPECT_GT(r.messages, 100u);
  EXPECT_EQ(r.latency_ns.count(), r.messages);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_GT(r.latency_ns.percentile(50), 0u);
  EXPECT_LE(r.latency_ns.percentile(50), r.latency_ns.percentile(99));
}

TEST_F(BenchTest, FixedRateSendsOnSchedule) {
  start({}, 1);
  bench::PingpongOptions o;
  o.target = endpoint();
  o.conns = 2;
  o.size = 64;
  o.rate = 2000;
  o.duration_s = 0.5;
  bench::PingpongResult r = bench::run_pingpong(o);
  // 2000/s for 0.5 s is 1001 sends (one at t=0); replies after the end are not counted.
  EXPECT_LE(r.messages, 1001u);
  EXPECT_GE(r.messages, 900u);
  EXPECT_EQ(r.errors.total(), 0u);
}

TEST_F(BenchTest, ServerGoingAwayIsCountedNotFatal) {
  start({}, 1);
  bench::PingpongOptions o;
  o.target = endpoint();
  o.conns = 8;
  o.duration_s = 2;
  auto run = std::async(std::launch::async, [o] { return bench::run_pingpong(o); });
  ASSERT_TRUE(eventually([&] { return server().stats().accepted == 8; }));
  server().stop();  // every connection closed under the generator's feet
  bench::PingpongResult r = run.get();
  EXPECT_EQ(r.errors.closed + r.errors.reset, 8u);
  EXPECT_EQ(r.errors.connect, 0u);
}

TEST_F(BenchTest, ConnectModeCompletesCycles) {
  start({}, 1);
  bench::ConnectOptions o;
  o.target = endpoint();
  o.concurrency = 4;
  o.duration_s = 0.3;
  bench::ConnectResult r = bench::run_connect(o);
  EXPECT_GT(r.completed, 10u);
  EXPECT_EQ(r.latency_ns.count(), r.completed);
  EXPECT_EQ(r.errors.total(), 0u);
}

TEST(BenchErrors, RefusedConnectsAreCounted) {
  bench::ConnectOptions o;
  o.target = Endpoint::parse("127.0.0.1:" + std::to_string(closed_loopback_port()));
  o.concurrency = 2;
  o.duration_s = 0.2;
  bench::ConnectResult r = bench::run_connect(o);
  EXPECT_EQ(r.completed, 0u);
  EXPECT_GT(r.errors.connect, 2u);

  bench::PingpongOptions p;
  p.target = o.target;
  p.conns = 3;
  p.duration_s = 0.2;
  bench::PingpongResult pr = bench::run_pingpong(p);
  EXPECT_EQ(pr.messages, 0u);
  EXPECT_EQ(pr.errors.connect, 3u);
}

TEST_F(BenchTest, IdleOpensHoldsAndVerifies) {
  start({}, 1);
  bench::IdleOptions o;
  o.target = endpoint();
  o.conns = 300;
  o.hold_s = 0.1;
  o.threads = 2;
  o.max_connecting = 50;
  o.server_pid = ::getpid();
  bench::IdleResult r = bench::run_idle(o);
  EXPECT_EQ(r.opened, 300u);
  EXPECT_EQ(r.alive, 300u);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_GT(r.server_rss_before_kib, 0);
  EXPECT_GT(r.server_rss_after_kib, 0);
}

}  // namespace
}  // namespace keel::test
