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

namespace keel {
namespace {

using namespace std::chrono_literals;

struct NoEvents : IoHandler {
  void handle_events(uint32_t) override {}
};

struct Pair {
  int fd[2] = {-1, -1};
  Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0); }
  ~Pair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};

TEST(EventLoopWatch, RewatchReportsAFailedModify) {
  EventLoop loop;
  Pair watched, other;
  NoEvents handler;
  loop.watch(watched.fd[0], EPOLLIN, &handler);
  EXPECT_EQ(loop.rewatch(watched.fd[0], EPOLLIN | EPOLLOUT, &handler), 0);
  // The watched file is closed (dropped from the epoll set); the number now names another file.
  ASSERT_EQ(::dup2(other.fd[0], watched.fd[0]), watched.fd[0]);
  EXPECT_EQ(loop.rewatch(watched.fd[0], EPOLLIN, &handler), ENOENT);
  // Gone from the set: unwatch is harmless, also for a closed descriptor.
  loop.unwatch(watched.fd[0]);
  ::close(watched.fd[0]);
  loop.unwatch(watched.fd[0]);
  watched.fd[0] = -1;
}

TEST(EventLoopWatch, ConnectionWhoseRewatchFailsIsClosedWithTheReason) {
  EventLoop loop;
  Pair peer, other;
  std::optional<CloseReason> closed;
  ConnectionCallbacks callbacks;
  callbacks.on_close = [&](TcpConnection&, const CloseReason& reason) {
    closed = reason;
    loop.quit();
  };
  loop.post([&] {
    auto owned = std::make_unique<TcpConnection>(loop, Socket(peer.fd[0]), callbacks, 1 << 20);
    peer.fd[0] = -1;
    TcpConnection* c = owned.get();
    ConnectionId id = loop.add_connection(std::move(owned));
    c->start(id);
    // Replace the watched socket behind the loop's back, then change the interest (EPOLLIN off).
    ASSERT_EQ(::dup2(other.fd[0], c->fd()), c->fd());
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
