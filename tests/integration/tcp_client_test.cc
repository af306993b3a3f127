// TcpClient against the in-process echo server: connect, echo, refused connects and retries.
#include "keel/net/tcp_client.h"

#include <errno.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "echo_fixture.h"
#include "test_util.h"

namespace keel::test {
namespace {

// A TcpClient living on its own one-loop pool. TcpClient is loop-thread only, including
// construction and destruction, so both happen on the loop.
class ClientOnLoop {
 public:
  ClientOnLoop(Endpoint server, ClientOptions options, ConnectionCallbacks callbacks,
               TcpClient::ConnectFailed on_failed = {})
      : loops_(1) {
    loops_.start();
    loops_.run_on_all_and_wait([&](EventLoop& loop) {
      client_ = std::make_unique<TcpClient>(loop, std::move(server), std::move(options),
                                            std::move(callbacks), std::move(on_failed));
      client_->connect();
    });
  }
  ~ClientOnLoop() {
    loops_.run_on_all_and_wait([&](EventLoop&) { client_.reset(); });
    loops_.stop();
  }
  // Runs fn(client) on the client's loop and waits.
  void with_client(const std::function<void(TcpClient&)>& fn) {
    loops_.run_on_all_and_wait([&](EventLoop&) { fn(*client_); });
  }

 private:
  LoopPool loops_;
  std::unique_ptr<TcpClient> client_;
};

struct Failure {
  CloseReason reason;
  int attempt;
  bool will_retry;
};

class Failures {
 public:
  TcpClient::ConnectFailed callback() {
    return [this](const CloseReason& reason, int attempt, bool will_retry) {
      std::lock_guard lock(mutex_);
      list_.push_back({reason, attempt, will_retry});
    };
  }
  std::vector<Failure> list() const {
    std::lock_guard lock(mutex_);
    return list_;
  }
  size_t size() const { return list().size(); }

 private:
  mutable std::mutex mutex_;
  std::vector<Failure> list_;
};

TEST_F(EchoServerTest, TcpClientEchoesThroughItsConnection) {
  start();
  const std::string message = "hello from TcpClient " + pattern_bytes(5000, 21);
  std::mutex mutex;
  std::string received;
  ConnectionId opened_id;
  ConnectionCallbacks callbacks;
  callbacks.on_open = [&](TcpConnection& c) {
    {
      std::lock_guard lock(mutex);
      opened_id = c.id();
    }
    c.send(message);
  };
  callbacks.on_data = [&](TcpConnection&, Buffer& in) {
    std::lock_guard lock(mutex);
    received += in.take_all();
  };
  Failures failures;
  ClientOnLoop client(endpoint(), ClientOptions{}, callbacks, failures.callback());

  EXPECT_TRUE(eventually(
      [&] {
        std::lock_guard lock(mutex);
        return received.size() >= message.size();
      },
      5s));
  {
    std::lock_guard lock(mutex);
    EXPECT_TRUE(received == message) << describe_difference(received, message);
    EXPECT_TRUE(opened_id.valid());
  }
  ConnectionId id;
  client.with_client([&](TcpClient& c) { id = c.connection(); });
  {
    std::lock_guard lock(mutex);
    EXPECT_TRUE(id == opened_id) << "connection() does not name the open connection";
  }
  EXPECT_EQ(failures.size(), 0u);
  EXPECT_EQ(server().connection_count(), 1u);
}

TEST_F(EchoServerTest, TcpClientSeesServerClose) {
  start({}, 2, &recorder_);
  std::atomic<int> closes{0};
  CloseReason last;
  std::mutex mutex;
  ConnectionCallbacks callbacks;
  callbacks.on_close = [&](TcpConnection&, const CloseReason& reason) {
    std::lock_guard lock(mutex);
    last = reason;
    closes.fetch_add(1);
  };
  ClientOnLoop client(endpoint(), ClientOptions{}, callbacks);
  ASSERT_TRUE(eventually([&] { return recorder_.opened().size() == 1; }, 5s));
  ASSERT_TRUE(server().shutdown(recorder_.opened()[0]));  // server FIN; client's default: FIN too
  EXPECT_TRUE(eventually([&] { return closes.load() == 1; }, 5s));
  {
    std::lock_guard lock(mutex);
    EXPECT_TRUE(last.clean()) << last.to_string();
  }
  ConnectionId id;
  client.with_client([&](TcpClient& c) { id = c.connection(); });
  EXPECT_FALSE(id.valid()) << "connection() still names a closed connection";
  EXPECT_TRUE(eventually([&] { return server().connection_count() == 0; }, 5s));
}

TEST(TcpClient, ConnectToClosedPortReportsRefused) {
  int port = closed_loopback_port();
  ASSERT_GT(port, 0);
  Failures failures;
  std::atomic<int> opens{0};
  ConnectionCallbacks callbacks;
  callbacks.on_open = [&](TcpConnection&) { opens.fetch_add(1); };
  ClientOnLoop client(Endpoint::parse("127.0.0.1:" + std::to_string(port)), ClientOptions{},
                      callbacks, failures.callback());
  ASSERT_TRUE(eventually([&] { return failures.size() == 1; }, 5s));
  Failure f = failures.list()[0];
  EXPECT_EQ(f.reason.error, ECONNREFUSED) << f.reason.to_string();
  EXPECT_FALSE(f.reason.clean());
  EXPECT_NE(f.reason.to_string().find("refused"), std::string::npos) << f.reason.to_string();
  EXPECT_EQ(f.attempt, 1);
  EXPECT_FALSE(f.will_retry) << "retry is off by default";
  EXPECT_EQ(opens.load(), 0);
}

TEST(TcpClient, RetriesUpToMaxAttempts) {
  int port = closed_loopback_port();
  ASSERT_GT(port, 0);
  ClientOptions options;
  options.retry = true;
  options.max_attempts = 3;
  options.initial_backoff = 10ms;
  options.max_backoff = 40ms;
  Failures failures;
  ClientOnLoop client(Endpoint::parse("127.0.0.1:" + std::to_string(port)), options, {},
                      failures.callback());
  ASSERT_TRUE(eventually([&] { return failures.size() >= 3; }, 5s)) << failures.size();
  auto list = failures.list();
  ASSERT_EQ(list.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(list[i].attempt, i + 1);
    EXPECT_EQ(list[i].reason.error, ECONNREFUSED) << list[i].reason.to_string();
  }
  EXPECT_TRUE(list[0].will_retry);
  EXPECT_TRUE(list[1].will_retry);
  EXPECT_FALSE(list[2].will_retry);
  int attempts = 0;
  client.with_client([&](TcpClient& c) { attempts = c.attempts(); });
  EXPECT_EQ(attempts, 3);
}

TEST(TcpClient, ConnectTimeoutReportsTimeout) {
  // A listener that never accepts, with a zero backlog filled by one connection: Linux drops
  // further SYNs, so a connect neither succeeds nor is refused.
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Endpoint any = Endpoint::parse("127.0.0.1:0");
  ASSERT_EQ(::bind(listener.get(), any.sockaddr_ptr(), any.sockaddr_len()), 0);
  ASSERT_EQ(::listen(listener.get(), 0), 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
  Endpoint target = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  std::vector<Fd> fillers;
  for (int i = 0; i < 2; ++i) {
    fillers.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    ::connect(fillers.back().get(), target.sockaddr_ptr(), target.sockaddr_len());
  }
  ASSERT_TRUE(wait_ready(fillers[0].get(), POLLOUT, 2s)) << "the first filler did not connect";

  ClientOptions options;
  options.connect_timeout = 200ms;
  Failures failures;
  std::atomic<int> opens{0};
  ConnectionCallbacks callbacks;
  callbacks.on_open = [&](TcpConnection&) { opens.fetch_add(1); };
  ClientOnLoop client(target, options, callbacks, failures.callback());
  ASSERT_TRUE(eventually([&] { return failures.size() == 1 || opens.load() > 0; }, 5s));
  if (opens.load() > 0) GTEST_SKIP() << "this kernel accepted past a full backlog";
  Failure f = failures.list()[0];
  EXPECT_EQ(f.reason.kind, CloseReason::Kind::timeout) << f.reason.to_string();
  EXPECT_EQ(f.reason.error, ETIMEDOUT);
  EXPECT_EQ(f.attempt, 1);
  EXPECT_FALSE(f.will_retry);
}

TEST_F(EchoServerTest, TcpClientRetryReachesServerThatAppearsLater) {
  // Find a free port, let the client start failing against it, then start a server there.
  int port = closed_loopback_port();
  ASSERT_GT(port, 0);
  ClientOptions options;
  options.retry = true;
  options.initial_backoff = 10ms;
  options.max_backoff = 20ms;
  options.max_attempts = 500;  // bounded: ~10 s of attempts
  Failures failures;
  std::atomic<int> opens{0};
  ConnectionCallbacks callbacks;
  callbacks.on_open = [&](TcpConnection&) { opens.fetch_add(1); };
  ClientOnLoop client(Endpoint::parse("127.0.0.1:" + std::to_string(port)), options, callbacks,
                      failures.callback());
  ASSERT_TRUE(eventually([&] { return failures.size() >= 2; }, 5s));
  ServerOptions server_options;
  server_options.listen.push_back(Endpoint::parse("127.0.0.1:" + std::to_string(port)));
  start(std::move(server_options));
  EXPECT_TRUE(eventually([&] { return opens.load() == 1; }, 5s));
  for (const Failure& f : failures.list()) EXPECT_TRUE(f.will_retry);
}

}  // namespace
}  // namespace keel::test
