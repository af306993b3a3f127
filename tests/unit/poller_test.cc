// Both pollers keep the contract EventLoop relies on (src/net/poller.h): level-triggered
// readiness, changes of interest, nothing reported after remove(), a descriptor number reused
// after a close without remove(), and a close after remove() that takes effect at once.
#include "net/poller.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "keel/net/event_loop.h"
#include "test_util.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Poller> make(IoBackend io) {
  if (io == IoBackend::epoll) return make_epoll_poller();
  std::string why;
  auto poller = make_uring_poller(&why);
  EXPECT_TRUE(poller) << why;
  return poller;
}

class PollerTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void SetUp() override {
    poller_ = make(GetParam());
    ASSERT_TRUE(poller_);
    ASSERT_EQ(poller_->backend(), GetParam());
  }
  // The events of one wait (blocking: at least one), as (tag, events) pairs.
  std::vector<epoll_event> wait(bool block) {
    epoll_event events[16];
    int n;
    do n = poller_->wait(events, 16, block);
    while (n == -EINTR);
    EXPECT_GE(n, 0);
    return std::vector<epoll_event>(events, events + std::max(n, 0));
  }
  // Waits without blocking until tag shows up, at most a second of turns.
  std::optional<uint32_t> events_of(void* tag) {
    std::optional<uint32_t> found;
    eventually(
        [&] {
          for (const epoll_event& e : wait(false))
            if (e.data.ptr == tag) found = e.events;
          return found.has_value();
        },
        1s);
    return found;
  }
  // True if tag is reported in any of a few turns (for what must not be).
  bool reported_within_turns(void* tag, int turns = 5) {
    bool seen = false;
    for (int i = 0; i < turns; ++i) {
      for (const epoll_event& e : wait(false)) seen |= e.data.ptr == tag;
      std::this_thread::sleep_for(10ms);  // lets a pending completion land; not a condition
    }
    return seen;
  }
  std::unique_ptr<Poller> poller_;
  char tag_a_ = 0, tag_b_ = 0;
};

TEST_P(PollerTest, ReadinessIsLevelTriggered) {
  SocketPair p;
  ASSERT_EQ(poller_->add(p.a, EPOLLIN, &tag_a_), 0);
  EXPECT_FALSE(reported_within_turns(&tag_a_, 2)) << "nothing to read yet";
  ASSERT_EQ(::write(p.b, "x", 1), 1);
  auto first = events_of(&tag_a_);
  ASSERT_TRUE(first);
  EXPECT_TRUE(*first & EPOLLIN);
  // Not read: reported again, turn after turn.
  EXPECT_TRUE(events_of(&tag_a_));
  EXPECT_TRUE(events_of(&tag_a_));
  char c;
  ASSERT_EQ(::read(p.a, &c, 1), 1);
  // Read: the report of the turn in flight may still come, then no more.
  wait(false);
  EXPECT_FALSE(reported_within_turns(&tag_a_));
}

TEST_P(PollerTest, ModifyChangesTheInterest) {
  SocketPair p;
  ASSERT_EQ(poller_->add(p.a, EPOLLIN, &tag_a_), 0);
  EXPECT_FALSE(reported_within_turns(&tag_a_, 2));
  ASSERT_EQ(poller_->modify(p.a, EPOLLIN | EPOLLOUT, &tag_b_), 0);
  auto events = events_of(&tag_b_);  // writable at once, reported with the new tag
  ASSERT_TRUE(events);
  EXPECT_TRUE(*events & EPOLLOUT);
  EXPECT_FALSE(*events & EPOLLIN);
  ASSERT_EQ(poller_->modify(p.a, EPOLLIN, &tag_b_), 0);
  wait(false);
  EXPECT_FALSE(reported_within_turns(&tag_b_));
  EXPECT_EQ(poller_->modify(p.b, EPOLLIN, &tag_b_), ENOENT) << "never added";
}

TEST_P(PollerTest, NothingIsReportedAfterRemoveEvenWhatWasAlreadyReady) {
  SocketPair p;
  ASSERT_EQ(poller_->add(p.a, EPOLLIN, &tag_a_), 0);
  ASSERT_EQ(::write(p.b, "x", 1), 1);
  wait(false);  // hands the request to the kernel, which may complete it at once
  std::this_thread::sleep_for(10ms);
  ASSERT_EQ(poller_->remove(p.a), 0);
  EXPECT_FALSE(reported_within_turns(&tag_a_));
  EXPECT_EQ(poller_->remove(p.a), ENOENT);
}

TEST_P(PollerTest, ADescriptorClosedWithoutRemoveCanBeWatchedAgainUnderItsNumber) {
  int reused;
  {
    SocketPair p;
    ASSERT_EQ(poller_->add(p.a, EPOLLIN, &tag_a_), 0);
    wait(false);
    reused = p.a;
  }  // both ends closed, the first without remove()
  SocketPair q;
  int other = q.a == reused ? q.b : q.a;  // the new socket that took the number
  ASSERT_TRUE(q.a == reused || q.b == reused) << "the descriptor number was not reused";
  ASSERT_EQ(poller_->add(reused, EPOLLIN, &tag_b_), 0);
  ASSERT_EQ(::write(other, "y", 1), 1);
  auto events = events_of(&tag_b_);
  ASSERT_TRUE(events);
  EXPECT_TRUE(*events & EPOLLIN);
  EXPECT_FALSE(reported_within_turns(&tag_a_, 2));
}

TEST_P(PollerTest, ACloseAfterRemoveReachesThePeerWithoutAnotherWait) {
  SocketPair p;
  ASSERT_EQ(poller_->add(p.a, EPOLLIN, &tag_a_), 0);
  wait(false);
  ASSERT_EQ(poller_->remove(p.a), 0);
  ::close(std::exchange(p.a, -1));
  // No wait follows (as after a loop's run() returned): the peer still sees the end.
  EXPECT_TRUE(wait_ready(p.b, POLLIN, 2s));
  char c;
  EXPECT_EQ(::read(p.b, &c, 1), 0);
}

TEST_P(PollerTest, APeerThatClosesIsReportedAsHangUp) {
  SocketPair p;
  ASSERT_EQ(poller_->add(p.a, EPOLLIN | EPOLLRDHUP, &tag_a_), 0);
  ::close(std::exchange(p.b, -1));
  auto events = events_of(&tag_a_);
  ASSERT_TRUE(events);
  EXPECT_TRUE(*events & (EPOLLRDHUP | EPOLLHUP)) << *events;
}

TEST_P(PollerTest, ABlockingWaitReturnsWhenADescriptorBecomesReady) {
  SocketPair p;
  ASSERT_EQ(poller_->add(p.a, EPOLLIN, &tag_a_), 0);
  std::jthread writer([fd = p.b] {
    std::this_thread::sleep_for(50ms);  // the wait is blocked by then, or nearly; either works
    [[maybe_unused]] ssize_t n = ::write(fd, "z", 1);
  });
  std::vector<epoll_event> got = wait(true);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data.ptr, &tag_a_);
}

INSTANTIATE_TEST_SUITE_P(Backends, PollerTest,
                         ::testing::Values(IoBackend::epoll, IoBackend::uring),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(IoBackend, ParsesItsNamesAndNothingElse) {
  EXPECT_EQ(parse_io_backend("epoll"), IoBackend::epoll);
  EXPECT_EQ(parse_io_backend("uring"), IoBackend::uring);
  EXPECT_EQ(parse_io_backend("io_uring"), IoBackend::uring);
  EXPECT_FALSE(parse_io_backend("kqueue"));
  EXPECT_FALSE(parse_io_backend(""));
  EXPECT_EQ(to_string(IoBackend::uring), "uring");
}

// A loop on io_uring: timers fire, posts from another thread wake it, and it says what it uses.
TEST(UringEventLoop, RunsTimersAndPostsFromAnotherThread) {
  std::string why;
  ASSERT_TRUE(io_uring_available(&why)) << why;
  EventLoop loop(0, IoBackend::uring);
  EXPECT_EQ(loop.io_backend(), IoBackend::uring);
  std::atomic<int> fired{0};
  std::jthread runner([&loop] { loop.run(); });
  loop.post([&loop, &fired] { loop.run_after(20ms, [&fired] { fired |= 1; }); });
  std::jthread poster([&loop, &fired] { loop.post([&fired] { fired |= 2; }); });
  EXPECT_TRUE(eventually([&] { return fired.load() == 3; }, 5s)) << fired.load();
  loop.quit();
}

}  // namespace
}  // namespace keel::test
