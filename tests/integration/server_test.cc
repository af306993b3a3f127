// TcpServer behaviour seen from clients: sending by id from other threads, the connection cap,
// graceful drain and the order in which a server and its loops may be started and stopped.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "echo_fixture.h"
#include "keel/error.h"
#include "test_util.h"

namespace keel::test {
namespace {

TEST_F(EchoServerTest, SendByIdFromNonLoopThreadReachesClient) {
  start({}, 2, &recorder_);
  Fd c = connect_client();
  ASSERT_TRUE(eventually([&] { return recorder_.opened().size() == 1; }, 5s));
  ConnectionId id = recorder_.opened()[0];
  ASSERT_TRUE(id.valid());
  EXPECT_FALSE(pool().loop(id.loop()).in_loop_thread()) << "the test must run off the loop";

  EXPECT_TRUE(server().send(id, "pushed from the test thread\n"));
  EXPECT_EQ(read_exactly(c.get(), 28, 5s), "pushed from the test thread\n");
  // Sends from one thread arrive in order.
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    std::string part = std::to_string(i) + ",";
    expected += part;
    ASSERT_TRUE(server().send(id, part));
  }
  std::string got = read_exactly(c.get(), expected.size(), 5s);
  EXPECT_EQ(got, expected);
}

TEST_F(EchoServerTest, SendToStaleIdReturnsFalse) {
  start({}, 2, &recorder_);
  Fd c = connect_client();
  ASSERT_TRUE(eventually([&] { return recorder_.opened().size() == 1; }, 5s));
  ConnectionId id = recorder_.opened()[0];
  c.reset();  // the client goes away
  ASSERT_TRUE(eventually([&] { return recorder_.closed().size() == 1; }, 5s));
  EXPECT_TRUE(recorder_.closed()[0].id == id);
  // Once the loop has let the connection go, its id is stale.
  ASSERT_TRUE(eventually([&] { return live_connections() == 0; }, 5s));
  EXPECT_FALSE(server().send(id, "nobody there"));
  EXPECT_FALSE(server().close(id, "nobody there"));
  EXPECT_FALSE(server().shutdown(id));

  // A new connection may reuse the slot; the old id must still not reach it.
  Fd d = connect_client();
  ASSERT_TRUE(eventually([&] { return recorder_.opened().size() == 2; }, 5s));
  EXPECT_FALSE(recorder_.opened()[1] == id);
  EXPECT_FALSE(server().send(id, "wrong connection"));
  EXPECT_EQ(round_trip(d.get(), "mine"), "mine");
}

TEST_F(EchoServerTest, CloseByIdFromNonLoopThread) {
  start({}, 2, &recorder_);
  Fd c = connect_client();
  ASSERT_TRUE(eventually([&] { return recorder_.opened().size() == 1; }, 5s));
  EXPECT_TRUE(server().close(recorder_.opened()[0], "kicked by test"));
  StreamEnd end = read_until_end(c.get(), nullptr, 5s);
  EXPECT_TRUE(end == StreamEnd::eof || end == StreamEnd::reset) << to_string(end);
  ASSERT_TRUE(eventually([&] { return recorder_.closed().size() == 1; }, 5s));
  EXPECT_EQ(recorder_.closed()[0].reason.kind, CloseReason::Kind::local);
  EXPECT_EQ(recorder_.closed()[0].reason.detail, "kicked by test");
}

TEST_F(EchoServerTest, MaxConnectionsRejectsTheThirdClient) {
  ServerOptions options;
  options.max_connections = 2;
  start(std::move(options));
  Fd a = connect_client();
  Fd b = connect_client();
  ASSERT_EQ(round_trip(a.get(), "a"), "a");
  ASSERT_EQ(round_trip(b.get(), "b"), "b");

  Fd third = connect_client();  // the kernel completes the handshake; the server then closes it
  StreamEnd end = read_until_end(third.get(), nullptr, 3s);
  EXPECT_TRUE(end == StreamEnd::eof || end == StreamEnd::reset) << to_string(end);
  EXPECT_EQ(server().stats().rejected_over_cap, 1u);
  EXPECT_EQ(server().connection_count(), 2u);
  EXPECT_EQ(round_trip(a.get(), "a again"), "a again");
  EXPECT_EQ(round_trip(b.get(), "b again"), "b again");

  // The cap counts live connections: once one leaves, a newcomer is served.
  a.reset();
  ASSERT_TRUE(eventually([&] { return server().connection_count() == 1; }, 5s));
  Fd d = connect_client();
  EXPECT_EQ(round_trip(d.get(), "d"), "d");
  EXPECT_EQ(server().stats().rejected_over_cap, 1u);
}

TEST_F(EchoServerTest, DrainClosesIdleClientGracefully) {
  start();
  Fd c = connect_client();
  ASSERT_EQ(round_trip(c.get(), "hi"), "hi");
  // The client reads until the server's FIN, then closes its side as a well-behaved peer would.
  std::promise<StreamEnd> client_end;
  std::jthread client([&] {
    client_end.set_value(read_until_end(c.get(), nullptr, 5s));
    c.reset();
  });
  EXPECT_EQ(server().drain(2s), 0u) << "a connection had to be force-closed";
  auto end = client_end.get_future();
  ASSERT_EQ(end.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(end.get(), StreamEnd::eof);
  EXPECT_EQ(server().connection_count(), 0u);
  // The listener is gone too.
  Fd late = connect_to(endpoint());
  EXPECT_FALSE(late.valid());
  EXPECT_EQ(errno, ECONNREFUSED);
}

TEST_F(EchoServerTest, DrainForceClosesClientThatNeverFinishes) {
  start();
  Fd c = connect_client();
  ASSERT_EQ(round_trip(c.get(), "hi"), "hi");
  // This client never closes its side: drain must give up after its timeout.
  EXPECT_EQ(server().drain(300ms), 1u);
  EXPECT_EQ(server().connection_count(), 0u);
  // It saw the graceful FIN first, then nothing more is coming.
  EXPECT_EQ(read_until_end(c.get(), nullptr, 5s), StreamEnd::eof);
}

TEST_F(EchoServerTest, DrainWithNoConnectionsReturnsAtOnce) {
  start();
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(server().drain(5s), 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s)
      << "drain waited with nothing to wait for";
}

TEST_F(EchoServerTest, StopClosesClients) {
  start();
  Fd c = connect_client();
  ASSERT_EQ(round_trip(c.get(), "hi"), "hi");
  server().stop();
  StreamEnd end = read_until_end(c.get(), nullptr, 5s);
  EXPECT_TRUE(end == StreamEnd::eof || end == StreamEnd::reset) << to_string(end);
  EXPECT_EQ(server().connection_count(), 0u);
}

TEST_F(EchoServerTest, ListenerPerLoopEchoesOnEveryLoop) {
  ServerOptions options;
  options.listener_per_loop = true;
  start(std::move(options), 2);
  ASSERT_NE(endpoint().port(), 0);
  std::vector<Fd> clients;
  for (int i = 0; i < 16; ++i) {
    clients.push_back(connect_client());
    EXPECT_EQ(round_trip(clients.back().get(), "n" + std::to_string(i)), "n" + std::to_string(i));
  }
  EXPECT_EQ(server().stats().accepted, 16u);
}

// Once a connection starts closing its id is stale for every thread: by the time on_close runs,
// no other thread can be told "sent" for it.
class LivenessAtCloseService final : public Service {
 public:
  explicit LivenessAtCloseService(LoopPool*& pool) : pool_(pool) {}
  const char* name() const noexcept override { return "liveness-at-close"; }
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    server.send(id, in.view());
    in.consume_all();
  }
  void on_close(Server&, ConnectionId id, const CloseReason&) override {
    live_at_close = pool_->loop(id.loop()).is_live(id) ? 1 : 0;
  }
  std::atomic<int> live_at_close{-1};

 private:
  LoopPool*& pool_;
};

TEST_F(EchoServerTest, IdIsStaleAsSoonAsCloseIsReported) {
  LoopPool* pool_ptr = nullptr;
  LivenessAtCloseService service(pool_ptr);
  start({}, 1, &service);
  pool_ptr = &pool();
  {
    Fd c = connect_client();
    ASSERT_EQ(round_trip(c.get(), "x"), "x");
  }  // the client closes
  ASSERT_TRUE(eventually([&] { return service.live_at_close.load() != -1; }, 5s));
  EXPECT_EQ(service.live_at_close.load(), 0);
}

TEST_F(EchoServerTest, InvalidIdsAreRejected) {
  start();
  EXPECT_FALSE(server().send(ConnectionId(), "x"));
  EXPECT_FALSE(server().send(ConnectionId(200, 0, 0), "x")) << "loop index out of range";
  EXPECT_FALSE(server().close(ConnectionId(1, 5, 0), "x")) << "never handed out";
  EXPECT_FALSE(server().shutdown(ConnectionId(0, 0, 7)));
}

TEST(TcpServerSetup, BindFailureNamesEndpointAndErrno) {
  // A listening socket holds a port; a second server on it must fail with a clear Error.
  Fd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Endpoint any = Endpoint::parse("127.0.0.1:0");
  ASSERT_EQ(::bind(holder.get(), any.sockaddr_ptr(), any.sockaddr_len()), 0);
  ASSERT_EQ(::listen(holder.get(), 1), 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ASSERT_EQ(::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
  Endpoint taken = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);

  LoopPool pool(1);
  ServerOptions options;
  options.listen.push_back(taken);
  TcpServer server(pool, options, {});
  try {
    server.start();
    ADD_FAILURE() << "second bind to " << taken.to_string() << " succeeded";
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_EQ(e.errno_value(), EADDRINUSE);
    EXPECT_NE(message.find("bind"), std::string::npos) << message;
    EXPECT_NE(message.find(taken.to_string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::strerror(EADDRINUSE)), std::string::npos) << message;
  }
}

TEST(TcpServerSetup, UnixBindFailureNamesPath) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir.path() + "/missing-dir/s.sock";
  LoopPool pool(1);
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("unix:" + path));
  TcpServer server(pool, options, {});
  try {
    server.start();
    ADD_FAILURE() << "bind to " << path << " succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.errno_value(), ENOENT);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(TcpServerSetup, NoEndpointIsAnError) {
  LoopPool pool(1);
  TcpServer server(pool, ServerOptions{}, {});
  EXPECT_THROW(server.start(), Error);
}

TEST(TcpServerSetup, LoopPoolNeedsAtLeastOneThread) {
  EXPECT_THROW(LoopPool(0), Error);
  EXPECT_THROW(LoopPool(ConnectionId::kMaxLoops + 1), Error);
}

// The example program starts the server before the loops; that must work too.
TEST(TcpServerLifecycle, ServerStartedBeforePool) {
  LoopPool pool(2);
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  EchoService echo;
  {
    ReactorEngine engine(pool, options, echo);
    engine.start();
    pool.start();
    Fd c = connect_to(engine.endpoints().front());
    ASSERT_TRUE(c.valid());
    EXPECT_EQ(round_trip(c.get(), "early bird"), "early bird");
    engine.stop();
  }
  pool.stop();
}

// Stopping the loops first and the server afterwards is allowed (TcpServer::stop has a path
// for loops that no longer run): connections are dropped without callbacks, nothing aborts.
TEST(TcpServerLifecycle, ServerStoppedAfterPool) {
  LoopPool pool(2);
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  EchoService echo;
  ReactorEngine engine(pool, options, echo);
  engine.start();
  pool.start();
  Fd c = connect_to(engine.endpoints().front());
  ASSERT_TRUE(c.valid());
  ASSERT_EQ(round_trip(c.get(), "hi"), "hi");
  pool.stop();
  engine.stop();
  EXPECT_EQ(read_until_end(c.get(), nullptr, 5s), StreamEnd::eof);
}

// Forwards each read to another engine, by its own connection's id, then answers "done".
class Forwarder final : public Service {
 public:
  const char* name() const noexcept override { return "forwarder"; }
  void on_open(Server&, const ConnectionInfo& info) override { opened = info.id; }
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    in.consume_all();
    other->send(id, "to the other engine\n");
    server.send(id, "done\n");
  }
  Server* other = nullptr;
  std::atomic<ConnectionId> opened{ConnectionId()};
};

// Ids are per engine, so two engines' first connections have the same id. A send to the other
// engine by that id, from inside this engine's callback for its own connection with the id,
// must reach the other engine's client (it once went to the connection in the callback: the
// dashboard's say reached the HTTP client instead of the hub client).
TEST(ReactorEngineIds, SendByIdFromAnotherEnginesCallbackReachesThisEnginesClient) {
  LoopPool pool_a(1), pool_b(1);
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  RecordingService recording;
  Forwarder forwarder;
  ReactorEngine b(pool_b, options, recording);
  ReactorEngine a(pool_a, options, forwarder);
  forwarder.other = &b;
  a.start();
  b.start();
  pool_a.start();
  pool_b.start();
  Fd to_b = connect_to(b.endpoints().front());
  ASSERT_TRUE(eventually([&] { return recording.opened().size() == 1; }, 5s));
  Fd to_a = connect_to(a.endpoints().front());
  ASSERT_TRUE(eventually([&] { return forwarder.opened.load().valid(); }, 5s));
  ASSERT_EQ(forwarder.opened.load(), recording.opened()[0]) << "the test needs equal ids";

  ASSERT_TRUE(write_all(to_a.get(), "go\n"));
  EXPECT_EQ(read_exactly(to_a.get(), 5, 5s), "done\n");
  EXPECT_EQ(read_exactly(to_b.get(), 20, 5s), "to the other engine\n");
  a.stop();
  b.stop();
  pool_a.stop();
  pool_b.stop();
}

}  // namespace
}  // namespace keel::test
