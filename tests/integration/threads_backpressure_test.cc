// Slow consumers under the threads engine: one is dropped with its reason line
// (Overflow::disconnect) while another thread's send() to it never blocks and is refused from
// the eviction on. (A producer that does not read is paused at the high-water mark under every
// engine: backpressure_test.cc.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <string>
#include <thread>

#include "test_util.h"
#include "threads_fixture.h"

namespace keel::test {
namespace {

class SlowConsumerTest : public ThreadsEngineTest {
 protected:
  static constexpr size_t kHighWater = 64 * 1024;

  // A client that reads nothing; its id.
  ConnectionId start_with_slow_consumer(Fd& slow) {
    ServerOptions options;
    options.high_water_bytes = kHighWater;
    options.socket.send_buffer_bytes = 64 * 1024;
    start(std::move(options), &service_);
    slow = connect_client();
    int small = 64 * 1024;
    ::setsockopt(slow.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    EXPECT_EQ(round_trip(slow.get(), "hi"), "hi");
    return opened_id(service_, 0);
  }

  // Another thread sends 1 KiB at a time until the engine refuses (the consumer is being
  // evicted). Counting, not timing: a send that blocked would stop the count.
  size_t send_until_refused(ConnectionId id) {
    std::atomic<size_t> sends{0};
    std::atomic<bool> refused{false};
    std::jthread sender([&] {
      const std::string chunk(1024, 'x');
      for (int i = 0; i < 1000000; ++i) {
        if (!engine().send(id, chunk)) {
          refused = true;
          return;
        }
        ++sends;
      }
    });
    EXPECT_TRUE(eventually([&] { return refused.load(); }))
        << "the sender stalled or was never refused after " << sends.load() << " sends";
    sender.join();
    return sends.load();
  }

  RecordingService service_{Service::Overflow::disconnect};
};

TEST_F(SlowConsumerTest, DroppedWithItsReasonLineWhileCrossThreadSenderNeverBlocks) {
  Fd slow;
  ConnectionId id = start_with_slow_consumer(slow);
  size_t sends = send_until_refused(id);
  EXPECT_GE(sends * 1024, kHighWater);

  // The consumer, reading at last, gets every byte accepted before the eviction, then the
  // reason line, then FIN.
  std::string got;
  EXPECT_EQ(read_until_end(slow.get(), &got, 30s), StreamEnd::eof);
  size_t line = got.rfind("! disconnected: ");
  ASSERT_NE(line, std::string::npos) << "no reason line in " << got.size() << " bytes";
  EXPECT_EQ(line, sends * 1024);
  EXPECT_EQ(got.find_first_not_of('x'), line);
  const std::string tail = " bytes waiting for you to read\n";
  ASSERT_GE(got.size(), tail.size());
  EXPECT_EQ(got.substr(got.size() - tail.size()), tail);
  slow.reset();

  ASSERT_TRUE(eventually([&] { return service_.close_reason(id).has_value(); }));
  CloseReason reason = *service_.close_reason(id);
  EXPECT_EQ(reason.kind, CloseReason::Kind::finished) << reason.to_string();
  EXPECT_EQ(reason.detail.rfind("slow consumer: ", 0), 0u) << reason.detail;
}

TEST_F(SlowConsumerTest, ConsumerThatNeverReadsIsClosedWhenGraceRunsOut) {
  Fd slow;
  ConnectionId id = start_with_slow_consumer(slow);
  send_until_refused(id);
  EXPECT_FALSE(engine().send(id, "more")) << "an evicted consumer still takes output";
  // ThreadsEngine::kEvictGrace (2 s) later it is closed, without having read.
  ASSERT_TRUE(eventually([&] { return service_.close_reason(id).has_value(); }, 10s));
  CloseReason reason = *service_.close_reason(id);
  EXPECT_EQ(reason.kind, CloseReason::Kind::local) << reason.to_string();
  EXPECT_EQ(reason.detail.rfind("slow consumer: ", 0), 0u) << reason.detail;
  EXPECT_NE(reason.detail.find("did not close in time"), std::string::npos) << reason.detail;
  EXPECT_TRUE(eventually([&] { return engine().stats().threads == 0; }));
}

}  // namespace
}  // namespace keel::test
