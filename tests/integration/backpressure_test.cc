// Backpressure in the echo service: a client that does not read is paused at the high-water
// mark with bounded server memory, and a pause is never left in place with nothing to resume it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <future>
#include <string>

#include "echo_fixture.h"
#include "test_util.h"

namespace keel::test {
namespace {

// Engines whose connections live in the test process, so their buffers can be inspected.
using EchoBackpressureTest = EchoEngineTest;
INSTANTIATE_TEST_SUITE_P(Models, EchoBackpressureTest, ::testing::ValuesIn(in_process_models()),
                         model_name);

// A client that sends without reading: the server must stop reading from it (echo pauses at
// the high-water mark) instead of buffering everything, and lose nothing once it reads again.
TEST_P(EchoBackpressureTest, ReaderThatDoesNotReadIsPausedWithBoundedMemory) {
  constexpr size_t kHighWater = 256 * 1024;
  ServerOptions options;
  options.high_water_bytes = kHighWater;
  start(std::move(options), 1);
  Fd c = connect_client();
  ::fcntl(c.get(), F_SETFL, O_NONBLOCK);

  // The bytes sent are a long pseudo-random sequence repeated with a prime period.
  const std::string period = pattern_bytes(1000003, 77);
  auto byte_at = [&](size_t i) { return period[i % period.size()]; };
  constexpr size_t kMaxBytes = 512u * 1024 * 1024;  // far more than any socket buffers hold
  size_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string chunk(65536, '\0');
  while (sent < kMaxBytes && std::chrono::steady_clock::now() < deadline) {
    if (!wait_ready(c.get(), POLLOUT, 200ms)) break;  // no room for 200 ms: backpressure
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = byte_at(sent + i);
    ssize_t n = ::send(c.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    ASSERT_GT(n, 0) << std::strerror(errno);
    sent += static_cast<size_t>(n);
  }
  ASSERT_LT(sent, kMaxBytes) << "the server never pushed back";
  ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer never blocked";

  size_t memory = 0;
  size_t connections = 0;
  bool paused = false;
  engine().visit([&](const ClientSnapshot& conn) {
    ++connections;
    memory += conn.buffer_bytes;
    paused = conn.reading_paused;
  });
  ASSERT_EQ(connections, 1u);
  RecordProperty("bytes_sent_before_backpressure", std::to_string(sent));
  RecordProperty("server_buffer_memory", std::to_string(memory));
  const size_t bound = 2 * (kHighWater + 64 * 1024) + 64 * 1024;
  EXPECT_LE(memory, bound) << "server buffers " << memory << " bytes for one slow reader (" << sent
                           << " bytes sent)";
  EXPECT_TRUE(paused) << "reading from the slow reader was not paused";

  // Now read everything back: every byte, in order.
  std::string got = read_exactly(c.get(), sent, 30s);
  ASSERT_EQ(got.size(), sent) << "echo stalled after the reader resumed";
  size_t bad = sent;
  for (size_t i = 0; i < sent; ++i)
    if (got[i] != byte_at(i)) {
      bad = i;
      break;
    }
  EXPECT_EQ(bad, sent) << "first wrong byte at offset " << bad;
  EXPECT_EQ(round_trip(c.get(), "and on"), "and on");
}

// Regression: the high-water report is deferred to the end of the loop turn. If the same turn
// also drains the output (read crosses the mark, then EPOLLOUT sends everything), the deferred
// report must not pause reading: with nothing queued, no write completion would ever resume it.
// The test holds the loop thread while the client arranges for both events to arrive together.
TEST_F(EchoServerTest, HighWaterCrossedAndDrainedInOneTurnDoesNotStall) {
  constexpr size_t kHighWater = 64 * 1024;
  ServerOptions options;
  options.high_water_bytes = kHighWater;
  options.socket.send_buffer_bytes = 1 << 20;  // room to drain everything in one send
  options.socket.recv_buffer_bytes = 1 << 20;
  start(std::move(options), 1);
  Fd c = connect_client();
  ::fcntl(c.get(), F_SETFL, O_NONBLOCK);

  const std::string period = pattern_bytes(1000003, 99);
  auto byte_at = [&](size_t i) { return period[i % period.size()]; };
  size_t sent = 0;
  auto send_bytes = [&](size_t n) {
    std::string chunk(n, '\0');
    for (size_t i = 0; i < n; ++i) chunk[i] = byte_at(sent + i);
    ASSERT_TRUE(write_all(c.get(), chunk, 5s));
    sent += n;
  };
  auto server_side = [&](size_t& queued, bool& paused) {
    pool().run_on_all_and_wait([&](EventLoop& loop) {
      loop.for_each_connection([&](TcpConnection& conn) {
        queued = conn.queued_output_bytes();
        paused = conn.reading_paused();
      });
    });
  };

  // 1. Send without reading until the server has to queue some output (kernel buffers full),
  //    but less than the high-water mark.
  size_t queued = 0;
  bool paused = false;
  for (int i = 0; i < 20000 && queued == 0; ++i) {
    send_bytes(4096);
    server_side(queued, paused);
  }
  ASSERT_GT(queued, 0u) << "the server never had to queue output";
  ASSERT_LE(queued, kHighWater) << "set-up overshot the mark";
  ASSERT_FALSE(paused);

  // 2. Hold the loop thread.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> held{false};
  pool().loop(0).post([released, &held] {
    held = true;
    released.wait_for(10s);
  });
  ASSERT_TRUE(eventually([&] { return held.load(); }, 5s));

  // 3. While it is held: read everything the kernel has for us (room for the server's whole
  //    output), then send more than the mark, so the next turn sees EPOLLIN and EPOLLOUT at once.
  std::string got;
  for (int i = 0; i < 100000 && wait_ready(c.get(), POLLIN, 100ms); ++i) {
    char buf[65536];
    ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  }
  send_bytes(3 * kHighWater);
  release.set_value();

  // 4. Every byte must come back.
  got += read_exactly(c.get(), sent - got.size(), 5s);
  server_side(queued, paused);
  EXPECT_EQ(got.size(), sent) << "echo stalled: reading_paused=" << paused
                              << " queued_output_bytes=" << queued;
  size_t bad = got.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != byte_at(i)) {
      bad = i;
      break;
    }
  EXPECT_EQ(bad, got.size()) << "first wrong byte at offset " << bad;
}

}  // namespace
}  // namespace keel::test
