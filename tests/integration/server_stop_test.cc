// TcpServer::stop() never returns while a connection of the server can still call back into it
// (its on_close runs through the server): the caller may free the server right after.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>

#include "keel/net/loop_pool.h"
#include "keel/net/tcp_server.h"
#include "test_util.h"

namespace keel::test {
namespace {

TEST(TcpServerStop, WaitsForAConnectionWhoseOnCloseIsStillRunning) {
  LoopPool pool(1);
  pool.start();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> in_close{false};
  ConnectionCallbacks callbacks;
  callbacks.on_close = [&](TcpConnection&, const CloseReason&) {
    in_close = true;
    released.wait_for(60s);  // a service's slow on_close; bounded so a broken test cannot hang
  };
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  auto server = std::make_unique<TcpServer>(pool, std::move(options), callbacks);
  server->start();
  Fd client = connect_to(server->endpoints().at(0));
  ASSERT_TRUE(client.valid());
  ASSERT_TRUE(eventually([&] { return server->stats().active == 1; }, 5s));

  auto stopped = std::async(std::launch::async, [&] { server->stop(); });
  ASSERT_TRUE(eventually([&] { return in_close.load(); }, 5s));
  // stop() used to give up after 5 s and return with the connection still inside on_close.
  EXPECT_EQ(stopped.wait_for(6s), std::future_status::timeout)
      << "stop() returned while a connection was still calling back into the server";
  release.set_value();
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(server->stats().active, 0u);
  server.reset();
}

}  // namespace
}  // namespace keel::test
