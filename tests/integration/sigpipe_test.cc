// SIGPIPE is never delivered (issue 9, item 4): the engines run in this process, whose SIGPIPE
// handler counts deliveries (the keel program ignores SIGPIPE, so only a library user's
// process, like this one, would die of it). Clients reset in the middle of big echoes, so the
// server writes into connections the peer has reset, while four good clients keep getting
// every byte (e2e/fault.h). A control at the end shows the handler would have counted: a
// plain write() into a stream whose peer has gone raises SIGPIPE here.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "e2e/fault.h"
#include "integration/echo_fixture.h"

namespace keel::test {
namespace {

std::atomic<int> g_sigpipes{0};
void count_sigpipe(int) {
  g_sigpipes.fetch_add(1, std::memory_order_relaxed);
}

class Sigpipe : public EchoEngineTest {
 protected:
  void SetUp() override {
    struct sigaction sa {};
    sa.sa_handler = count_sigpipe;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(::sigaction(SIGPIPE, &sa, &saved_), 0);
    g_sigpipes = 0;
  }
  void TearDown() override {
    EchoEngineTest::TearDown();
    ::sigaction(SIGPIPE, &saved_, nullptr);
  }
  struct sigaction saved_ {};
};

TEST_P(Sigpipe, NeverDeliveredWhileClientsResetInTheMiddleOfEchoes) {
  model_ = GetParam();
  start();
  fault::EchoProbe probe(endpoint());
  ASSERT_TRUE(probe.progresses(20)) << probe.stop().error;
  const size_t baseline = fault::rss_kib(::getpid());
  fault::RssPeak peak(::getpid());

  // Three waves of eight clients, each resetting somewhere between 1 and 4 MiB into a 4 MiB echo.
  const std::string stream = pattern_bytes(4 << 20, 5);
  for (int wave = 0; wave < 3; ++wave) {
    std::vector<std::string> errors(8);
    {
      std::vector<std::jthread> bad;
      for (size_t i = 0; i < errors.size(); ++i)
        bad.emplace_back(
            [&, i] { errors[i] = fault::echo_then_reset(endpoint(), stream, (1 + i % 4) << 20); });
    }
    for (size_t i = 0; i < errors.size(); ++i)
      EXPECT_EQ(errors[i], "") << "wave " << wave << ", client " << i;
  }
  ASSERT_TRUE(eventually([&] { return engine().stats().active == fault::Scene::kGoodClients; }))
      << engine().stats().active << " connections left";
  EXPECT_EQ(g_sigpipes.load(), 0) << "SIGPIPE reached the process";
  EXPECT_TRUE(probe.progresses(20)) << "the good clients stalled";
  const size_t after = fault::wait_rss_back(::getpid(), baseline);
  fault::ProbeResult r = probe.stop();
  std::string line = fault::report(std::string("SIGPIPE (") + to_string(GetParam()) + ")", r,
                                   baseline, peak.peak_kib(), after);
  EXPECT_EQ(r.error, "");
  EXPECT_LE(after, fault::rss_bound_kib(baseline)) << line;

  // The control: a plain write() into a stream whose peer is gone raises SIGPIPE here, and the
  // handler counts it (so the zero above was measured, not assumed).
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  ::close(pair[1]);
  EXPECT_EQ(::write(pair[0], "x", 1), -1);
  ::close(pair[0]);
  EXPECT_EQ(g_sigpipes.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Models, Sigpipe, ::testing::ValuesIn(in_process_models()), model_name);

}  // namespace
}  // namespace keel::test
