// EventLoop readiness registration when epoll_ctl fails: a descriptor replaced behind the loop's
// back (dup2 over it) is no longer the watched file, so EPOLL_CTL_MOD fails with ENOENT.
#include <errno.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "keel/net/event_loop.h"
#include "keel/net/socket.h"
#include "keel/net/tcp_connection.h"
#include "test_util.h"

namespace keel {
namespace {

using namespace std::chrono_literals;

struct NoEvents : IoHandler {
  void handle_events(uint32_t) override {}
};

TEST(EventLoopWatch, RewatchReportsAFailedModify) {
  EventLoop loop;
  test::SocketPair watched, other;
  NoEvents handler;
  loop.watch(watched.a, EPOLLIN, &handler);
  EXPECT_EQ(loop.rewatch(watched.a, EPOLLIN | EPOLLOUT, &handler), 0);
  // The watched file is closed (dropped from the epoll set); the number now names another file.
  ASSERT_EQ(::dup2(other.a, watched.a), watched.a);
  EXPECT_EQ(loop.rewatch(watched.a, EPOLLIN, &handler), ENOENT);
  // Gone from the set: unwatch is harmless, also for a closed descriptor.
  loop.unwatch(watched.a);
  ::close(watched.a);
  loop.unwatch(watched.a);
  watched.a = -1;
}

TEST(EventLoopWatch, ConnectionWhoseRewatchFailsIsClosedWithTheReason) {
  EventLoop loop;
  test::SocketPair peer, other;
  std::optional<CloseReason> closed;
  ConnectionCallbacks callbacks;
  callbacks.on_close = [&](TcpConnection&, const CloseReason& reason) {
    closed = reason;
    loop.quit();
  };
  loop.post([&] {
    auto owned = std::make_unique<TcpConnection>(loop, Socket(peer.a), callbacks, 1 << 20);
    peer.a = -1;
    TcpConnection* c = owned.get();
    ConnectionId id = loop.add_connection(std::move(owned));
    c->start(id);
    // Replace the watched socket behind the loop's back, then change the interest (EPOLLIN off).
    ASSERT_EQ(::dup2(other.a, c->fd()), c->fd());
    c->pause_reading();
  });
  bool timed_out = false;
  loop.run_after(5s, [&] {
    timed_out = true;
    loop.quit();
  });
  loop.run();
  EXPECT_FALSE(timed_out) << "the connection was stranded: no on_close after a failed rewatch";
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(closed->kind, CloseReason::Kind::error);
  EXPECT_EQ(closed->error, ENOENT);
  EXPECT_NE(closed->to_string().find("epoll_ctl modify"), std::string::npos) << closed->to_string();
}

}  // namespace
}  // namespace keel
