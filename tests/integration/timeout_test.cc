// Connection deadlines under every model: the idle timeout closes a silent client (not before
// its time) while a client that talks stays; the half-close timeout closes a peer that never
// answers our FIN; each is its own close reason and is counted in the engine's stats; keepalive
// and TCP_USER_TIMEOUT reach the accepted sockets.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <thread>

#include "services/echo/echo_service.h"
#include "test_util.h"
#include "threads_fixture.h"

namespace keel::test {
namespace {

using Clock = std::chrono::steady_clock;

class TimeoutTest : public EngineVerbsTest {};

// Every model, seen from the clients: the silent one gets EOF after the timeout (never before),
// the one that sends a byte every 250 ms is still served after three timeouts.
class TimeoutAllModelsTest : public EngineVerbsTest {};

TEST_P(TimeoutAllModelsTest, IdleTimeoutClosesASilentClientWhileATalkerStays) {
  constexpr auto kIdle = 1000ms;
  ServerOptions options;
  options.timeouts.idle = kIdle;
  start(std::move(options), &own_service<EchoService>());  // runs under processes too
  const Clock::time_point connected = Clock::now();
  Fd silent = connect_client();
  Fd talker = connect_client();
  ASSERT_EQ(round_trip(talker.get(), "x"), "x");

  // The talker talks until the silent one has been closed and for one more timeout after.
  std::optional<Clock::time_point> silent_closed;
  std::optional<Clock::time_point> stop_at;
  while (!stop_at || Clock::now() < *stop_at) {
    ASSERT_LT(Clock::now() - connected, 10s) << "the silent client was never closed";
    ASSERT_EQ(round_trip(talker.get(), "ping"), "ping");
    if (!silent_closed && wait_ready(silent.get(), POLLIN, 250ms)) {
      char c;
      ASSERT_EQ(::recv(silent.get(), &c, 1, 0), 0) << "the silent client got bytes, not EOF";
      silent_closed = Clock::now();
      stop_at = *silent_closed + kIdle + 500ms;
    } else if (silent_closed) {
      std::this_thread::sleep_for(250ms);  // the talker's pace, not a wait for a condition
    }
  }
  auto after = std::chrono::duration_cast<std::chrono::milliseconds>(*silent_closed - connected);
  EXPECT_GE(after, kIdle) << "closed before its idle timeout";
  EXPECT_LE(after, kIdle + 1500ms);
  EXPECT_EQ(round_trip(talker.get(), "still here"), "still here");
}

INSTANTIATE_TEST_SUITE_P(Models, TimeoutAllModelsTest, ::testing::ValuesIn(all_models()),
                         model_name);

TEST_P(TimeoutTest, IdleTimeoutIsItsOwnCloseReasonAndCounted) {
  ServerOptions options;
  options.timeouts.idle = 300ms;
  start(std::move(options));
  Fd c = connect_client();
  ConnectionId id = opened_id(recorder_, 0);
  EXPECT_EQ(read_until_end(c.get(), nullptr, 10s), StreamEnd::eof);
  ASSERT_TRUE(eventually([&] { return recorder_.close_reason(id).has_value(); }));
  CloseReason reason = *recorder_.close_reason(id);
  EXPECT_EQ(reason.kind, CloseReason::Kind::idle_timeout) << reason.to_string();
  EXPECT_EQ(reason.to_string(), "idle timeout (no byte either way for 300 ms)");
  EngineStats stats = engine().stats();
  EXPECT_EQ(stats.closed[static_cast<size_t>(CloseReason::Kind::idle_timeout)], 1u);
  EXPECT_EQ(stats.closed[static_cast<size_t>(CloseReason::Kind::finished)], 0u);
}

// Output the client reads slowly keeps the connection alive: bytes going out are activity.
TEST_P(TimeoutTest, BytesGoingOutCountAsActivity) {
  ServerOptions options;
  options.timeouts.idle = 400ms;
  options.high_water_bytes = 64 * 1024;
  options.socket.send_buffer_bytes = 16 * 1024;
  start(std::move(options));
  Fd c = connect_client();
  int small = 16 * 1024;
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ConnectionId id = opened_id(recorder_, 0);
  // 1 MiB echoed back while the client reads 32 KiB every 100 ms: about 3 s of traffic in
  // which the client sends nothing after the first moments.
  const std::string data = pattern_bytes(1024 * 1024, 9);
  std::jthread writer([&] { write_all(c.get(), data, 30s); });
  std::string got;
  char buf[32 * 1024];
  const Clock::time_point deadline = Clock::now() + 30s;
  while (got.size() < data.size() && Clock::now() < deadline) {
    if (!wait_ready(c.get(), POLLIN, 2s)) break;
    ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    std::this_thread::sleep_for(100ms);  // the slow reader's pace
  }
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  EXPECT_FALSE(recorder_.close_reason(id).has_value()) << recorder_.close_reason(id)->to_string();
}

// Shuts its side down as soon as a client opens; echoes nothing.
class ShutdownOnOpen : public RecordingService {
 public:
  void on_open(Server& server, const ConnectionInfo& info) override {
    RecordingService::on_open(server, info);
    server.shutdown(info.id);
  }
};

TEST_P(TimeoutTest, HalfCloseTimeoutClosesAPeerThatNeverSendsItsFin) {
  ServerOptions options;
  options.timeouts.half_close = 400ms;
  ShutdownOnOpen& service = own_service<ShutdownOnOpen>();
  start(std::move(options), &service);
  Fd c = connect_client();
  ConnectionId id = opened_id(service, 0);
  // Our FIN arrives; the client keeps its side open and says nothing.
  EXPECT_EQ(read_until_end(c.get(), nullptr, 10s), StreamEnd::eof);
  ASSERT_TRUE(eventually([&] { return service.close_reason(id).has_value(); }));
  CloseReason reason = *service.close_reason(id);
  EXPECT_EQ(reason.kind, CloseReason::Kind::half_close_timeout) << reason.to_string();
  EXPECT_EQ(engine().stats().closed[static_cast<size_t>(CloseReason::Kind::half_close_timeout)],
            1u);
}

TEST_P(TimeoutTest, APeerThatAnswersOurFinFinishesCleanly) {
  ServerOptions options;
  options.timeouts.half_close = 5s;
  options.timeouts.idle = 5s;
  ShutdownOnOpen& service = own_service<ShutdownOnOpen>();
  start(std::move(options), &service);
  Fd c = connect_client();
  ConnectionId id = opened_id(service, 0);
  EXPECT_EQ(read_until_end(c.get(), nullptr, 10s), StreamEnd::eof);
  ::shutdown(c.get(), SHUT_WR);
  ASSERT_TRUE(eventually([&] { return service.close_reason(id).has_value(); }));
  EXPECT_EQ(service.close_reason(id)->kind, CloseReason::Kind::finished)
      << service.close_reason(id)->to_string();
}

TEST_P(TimeoutTest, KeepaliveAndUserTimeoutReachTheAcceptedSocket) {
  ServerOptions options;
  options.socket.keep_alive = true;
  options.socket.keep_alive_idle_s = 7;
  options.socket.keep_alive_interval_s = 3;
  options.socket.keep_alive_count = 4;
  options.socket.user_timeout_ms = 19000;
  start(std::move(options));
  Fd c = connect_client();
  ASSERT_EQ(round_trip(c.get(), "k"), "k");
  // The engine's end of this connection lives in this process: the descriptor whose peer is
  // the client's local address.
  sockaddr_storage me{};
  socklen_t me_len = sizeof me;
  ASSERT_EQ(::getsockname(c.get(), reinterpret_cast<sockaddr*>(&me), &me_len), 0);
  const Endpoint mine = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&me), me_len);
  int server_fd = -1;
  for (int fd = 0; fd < 4096 && server_fd < 0; ++fd) {
    if (fd == c.get()) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
        Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len) == mine)
      server_fd = fd;
  }
  ASSERT_GE(server_fd, 0) << "no descriptor in this process is the server's end";
  auto get = [&](int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    EXPECT_EQ(::getsockopt(server_fd, level, name, &v, &len), 0);
    return v;
  };
  EXPECT_EQ(get(SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPIDLE), 7);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPINTVL), 3);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPCNT), 4);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_USER_TIMEOUT), 19000);
}

INSTANTIATE_TEST_SUITE_P(Models, TimeoutTest, ::testing::ValuesIn(in_process_models()), model_name);

}  // namespace
}  // namespace keel::test
