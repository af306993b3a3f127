// HttpService in-process, with short intervals: an event stream whose client stops reading is
// closed once its output passes the limit (and counted), while a reading one carries on; the
// stream limit answers 503; traffic counters include closed connections.
#include "services/http/http_service.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>
#include <optional>

#include "e2e/http_client.h"
#include "keel/engine/reactor.h"
#include "keel/net/loop_pool.h"
#include "services/echo/echo_service.h"
#include "test_util.h"

namespace keel::test {
namespace {

class HttpServiceTest : public ::testing::Test {
 protected:
  // send_buffer: SO_SNDBUF of the HTTP server's connections (unset: the kernel's autotuned one,
  // which on loopback grows to megabytes and would hold a stalled stream's output itself).
  void start(http::HttpOptions options, std::optional<int> send_buffer = std::nullopt) {
    ServerOptions echo_options;
    echo_options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    echo_pool_ = std::make_unique<LoopPool>(1);
    echo_ = std::make_unique<ReactorEngine>(*echo_pool_, echo_options, echo_service_);
    echo_->start();
    echo_pool_->start();
    api_.scope.engines = {echo_.get()};
    api_.token = "t";
    api_.loops = {&echo_pool_->loop(0)};
    service_ = std::make_unique<http::HttpService>(options, api_);
    ServerOptions o;
    o.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    o.high_water_bytes = 4 << 20;
    o.socket.send_buffer_bytes = send_buffer;
    http_pool_ = std::make_unique<LoopPool>(1);
    http_ = std::make_unique<ReactorEngine>(*http_pool_, o, *service_);
    http_->start();
    http_pool_->start();
    port_ = http_->endpoints().front().port();
  }
  void TearDown() override {
    if (http_) http_->stop();
    http_pool_.reset();
    if (echo_) echo_->stop();
    echo_pool_.reset();
  }
  // A client whose receive buffer is small, so the server's output queues up fast.
  Fd stream_client(int rcvbuf) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    Endpoint ep = Endpoint::parse("127.0.0.1:" + std::to_string(port_));
    if (::connect(fd.get(), ep.sockaddr_ptr(), ep.sockaddr_len()) != 0) fd.reset();
    return fd;
  }

  EchoService echo_service_;
  std::unique_ptr<LoopPool> echo_pool_, http_pool_;
  std::unique_ptr<ReactorEngine> echo_, http_;
  http::Api api_;
  std::unique_ptr<http::HttpService> service_;
  int port_ = 0;
};

TEST_F(HttpServiceTest, AnEventStreamThatIsNotReadIsDropped) {
  http::HttpOptions o;
  o.event_interval = std::chrono::milliseconds(1);
  o.max_stream_queued_bytes = 32 * 1024;
  // A small kernel send buffer: the stalled stream's output queues in keel, not in the kernel.
  start(o, 8192);
  Fd reader = stream_client(1 << 20);
  Fd stalled = stream_client(4096);
  ASSERT_TRUE(reader.valid() && stalled.valid());
  const std::string get = "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(write_all(reader.get(), get));
  ASSERT_TRUE(write_all(stalled.get(), get));
  ASSERT_TRUE(eventually([&] { return api_.event_streams() == 2; }));
  // The stalled client reads nothing; the reader keeps reading.
  std::string got;
  char buf[65536];
  ASSERT_TRUE(eventually(
      [&] {
        ssize_t n = read_some(reader.get(), buf, sizeof buf);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        return api_.streams_dropped() == 1;
      },
      std::chrono::seconds(20)))
      << "queued output never passed the limit";
  // The drop is counted when it is decided, the stream when its connection has closed.
  EXPECT_TRUE(eventually([&] { return api_.event_streams() == 1u; }))
      << api_.event_streams() << " event streams";
  // The stalled client finds its stream ended (after what it had been sent).
  EXPECT_NE(read_until_end(stalled.get()), StreamEnd::timeout);
  size_t before = got.size();
  ASSERT_TRUE(eventually([&] {
    ssize_t n = read_some(reader.get(), buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    return got.size() > before + 1000;
  }));
}

TEST_F(HttpServiceTest, TooManyStreamsIs503) {
  http::HttpOptions o;
  o.max_event_streams = 1;
  start(o);
  Fd first = stream_client(1 << 16);
  ASSERT_TRUE(write_all(first.get(), "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return api_.event_streams() == 1; }));
  HttpReply second = http_get(port_, "/api/events");
  EXPECT_EQ(second.status, 503);
  EXPECT_EQ(second.header("retry-after"), "5");
  first.reset();
  ASSERT_TRUE(eventually([&] { return api_.event_streams() == 0; }));
}

TEST_F(HttpServiceTest, TrafficCountsClosedConnections) {
  start({});
  Endpoint ep = echo_->endpoints().front();
  for (int i = 0; i < 3; ++i) {
    Fd c = connect_to(ep);
    ASSERT_EQ(round_trip(c.get(), "hello"), "hello");
  }
  ASSERT_TRUE(eventually([&] { return echo_->connection_count() == 0; }));
  EngineTraffic t = echo_->traffic();
  EXPECT_EQ(t.bytes_in, 15u);
  EXPECT_EQ(t.bytes_out, 15u);
  EXPECT_EQ(t.reads, 3u);
  EXPECT_EQ(t.sends, 3u);
  Fd live = connect_to(ep);
  ASSERT_EQ(round_trip(live.get(), "abc"), "abc");
  EXPECT_EQ(echo_->traffic().bytes_in, 18u);
}

}  // namespace
}  // namespace keel::test
