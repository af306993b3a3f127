#include "keel/net/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace keel {
namespace {

using namespace std::chrono_literals;

// Runs loop on the calling thread with a watchdog: if the test's own quit never comes, the
// watchdog quits after timeout and the test fails instead of hanging.
void run_with_watchdog(EventLoop& loop, std::chrono::milliseconds timeout = 5s) {
  bool timed_out = false;
  loop.run_after(timeout, [&] {
    timed_out = true;
    loop.quit();
  });
  loop.run();
  EXPECT_FALSE(timed_out) << "the loop had to be stopped by the watchdog";
}

// A loop running on its own thread; stopped and joined by the destructor.
class LoopThread {
 public:
  LoopThread() {
    auto id = started_.get_future();
    thread_ = std::jthread([this] {
      loop_.post([this] { started_.set_value(std::this_thread::get_id()); });
      loop_.run();
      returned_ = true;
    });
    if (id.wait_for(5s) == std::future_status::ready) thread_id_ = id.get();
  }
  ~LoopThread() {
    loop_.quit();
    thread_.join();
  }
  EventLoop& loop() { return loop_; }
  std::thread::id thread_id() const { return thread_id_; }
  bool returned() const { return returned_; }

 private:
  EventLoop loop_;
  std::promise<std::thread::id> started_;
  std::thread::id thread_id_;
  std::atomic<bool> returned_{false};
  std::jthread thread_;
};

TEST(EventLoop, TimersFireInDeadlineOrder) {
  EventLoop loop;
  std::string fired;
  loop.run_after(60ms, [&] { fired += 'd'; });
  loop.run_after(5ms, [&] { fired += 'a'; });
  loop.run_after(40ms, [&] { fired += 'c'; });
  loop.run_after(20ms, [&] { fired += 'b'; });
  loop.run_after(80ms, [&] { loop.quit(); });
  run_with_watchdog(loop);
  EXPECT_EQ(fired, "abcd");
}

TEST(EventLoop, TimersWithEqualDeadlinesFireInInsertionOrder) {
  EventLoop loop;
  std::string fired;
  // All due at once: the loop only runs after every one has been added (and is overdue).
  for (char c : std::string("pqrstuvwxyz")) loop.run_after(0ms, [&fired, c] { fired += c; });
  loop.run_after(20ms, [&] { loop.quit(); });
  run_with_watchdog(loop);
  EXPECT_EQ(fired, "pqrstuvwxyz");
}

TEST(EventLoop, TimerAddedByATimerRunsLater) {
  EventLoop loop;
  std::string fired;
  loop.run_after(1ms, [&] {
    fired += 'a';
    loop.run_after(0ms, [&] {
      fired += 'c';
      loop.quit();
    });
    fired += 'b';
  });
  run_with_watchdog(loop);
  EXPECT_EQ(fired, "abc");
}

TEST(EventLoop, CancelTimerPreventsFiring) {
  EventLoop loop;
  bool fired = false;
  bool fired_before_run = false;
  TimerId victim = loop.run_after(20ms, [&] { fired = true; });
  TimerId early = loop.run_after(1ms, [&] { fired_before_run = true; });
  loop.cancel_timer(early);  // cancelled before the loop runs
  loop.run_after(2ms, [&] { loop.cancel_timer(victim); });
  loop.run_after(60ms, [&] { loop.quit(); });
  run_with_watchdog(loop);
  EXPECT_FALSE(fired);
  EXPECT_FALSE(fired_before_run);
}

TEST(EventLoop, CancellingFiredOrUnknownTimerIsHarmless) {
  EventLoop loop;
  int fired = 0;
  TimerId once = loop.run_after(1ms, [&] { ++fired; });
  loop.run_after(10ms, [&] {
    loop.cancel_timer(once);
    loop.cancel_timer(987654321);
    loop.cancel_timer(0);
    loop.run_after(1ms, [&] {
      ++fired;
      loop.quit();
    });
  });
  run_with_watchdog(loop);
  EXPECT_EQ(fired, 2);
}

TEST(EventLoop, RunEveryRepeatsUntilItCancelsItself) {
  EventLoop loop;
  int ticks = 0;
  TimerId id = 0;
  id = loop.run_every(2ms, [&] {
    if (++ticks == 5) {
      loop.cancel_timer(id);
      // Long enough for several more ticks, were the timer still armed.
      loop.run_after(40ms, [&] { loop.quit(); });
    }
  });
  run_with_watchdog(loop);
  EXPECT_EQ(ticks, 5);
}

TEST(EventLoop, RunEveryCancelledByAnotherTimer) {
  EventLoop loop;
  int ticks = 0;
  TimerId every = loop.run_every(1ms, [&] { ++ticks; });
  bool stopped = false;
  loop.run_every(1ms, [&] {
    if (!stopped && ticks >= 3) {
      stopped = true;
      loop.cancel_timer(every);
      int at_cancel = ticks;
      loop.run_after(30ms, [&loop, &ticks, at_cancel] {
        EXPECT_EQ(ticks, at_cancel);
        loop.quit();
      });
    }
  });
  run_with_watchdog(loop);
  EXPECT_TRUE(stopped);
}

TEST(EventLoop, PostFromAnotherThreadRunsOnLoopThread) {
  LoopThread lt;
  ASSERT_NE(lt.thread_id(), std::thread::id()) << "loop thread did not start";
  EXPECT_FALSE(lt.loop().in_loop_thread()) << "the test thread is not the loop thread";
  EXPECT_EQ(EventLoop::current(), nullptr);

  std::promise<void> done;
  std::thread::id ran_on;
  EventLoop* current = nullptr;
  bool in_loop = false;
  lt.loop().post([&] {
    ran_on = std::this_thread::get_id();
    current = EventLoop::current();
    in_loop = lt.loop().in_loop_thread();
    done.set_value();
  });
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(ran_on, lt.thread_id());
  EXPECT_NE(ran_on, std::this_thread::get_id());
  EXPECT_EQ(current, &lt.loop());
  EXPECT_TRUE(in_loop);
}

TEST(EventLoop, PostsFromManyThreadsAllRunInPerThreadOrder) {
  LoopThread lt;
  constexpr int kThreads = 4;
  constexpr int kPosts = 2000;
  std::vector<std::vector<int>> seen(kThreads);  // touched only on the loop thread
  std::atomic<int> ran{0};
  {
    std::vector<std::jthread> posters;
    for (int t = 0; t < kThreads; ++t)
      posters.emplace_back([&, t] {
        for (int i = 0; i < kPosts; ++i)
          lt.loop().post([&, t, i] {
            seen[t].push_back(i);
            ran.fetch_add(1);
          });
      });
  }
  ASSERT_TRUE(test::eventually([&] { return ran.load() == kThreads * kPosts; }, 10s))
      << ran.load() << " of " << kThreads * kPosts << " posted tasks ran";
  std::promise<void> checked;
  lt.loop().post([&] {
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_EQ(seen[t].size(), static_cast<size_t>(kPosts));
      for (int i = 0; i < kPosts; ++i) ASSERT_EQ(seen[t][i], i);
    }
    checked.set_value();
  });
  ASSERT_EQ(checked.get_future().wait_for(5s), std::future_status::ready);
}

TEST(EventLoop, PostNeverRunsInsideTheCall) {
  EventLoop loop;
  bool after_post = false;
  bool seen_by_task = false;
  bool inner_after_post = false;
  bool inner_seen = false;
  // Posted before run(): runs only once the loop runs.
  loop.post([&] { seen_by_task = after_post; });
  after_post = true;
  // Posted from the loop thread while the loop runs: still not inline.
  loop.post([&] {
    loop.post([&] {
      inner_seen = inner_after_post;
      loop.quit();
    });
    inner_after_post = true;
  });
  run_with_watchdog(loop);
  EXPECT_TRUE(seen_by_task);
  EXPECT_TRUE(inner_seen);
}

TEST(EventLoop, DeferRunsAfterTheCurrentTask) {
  EventLoop loop;
  std::string order;
  loop.post([&] {
    loop.defer([&] {
      order += 'b';
      loop.quit();
    });
    order += 'a';
  });
  run_with_watchdog(loop);
  EXPECT_EQ(order, "ab");
}

TEST(EventLoop, QuitFromAnotherThreadStopsRun) {
  EventLoop loop;
  std::atomic<bool> running{false};
  std::atomic<bool> returned{false};
  std::jthread thread([&] {
    loop.post([&] { running = true; });
    loop.run();  // nothing to do: blocks in epoll_wait until quit() wakes it
    returned = true;
  });
  ASSERT_TRUE(test::eventually([&] { return running.load(); }, 5s));
  EXPECT_FALSE(returned.load());
  loop.quit();
  EXPECT_TRUE(test::eventually([&] { return returned.load(); }, 5s))
      << "run() did not return after quit()";
}

TEST(EventLoop, QuitBeforeRunMakesRunReturn) {
  EventLoop loop;
  bool ran = false;
  loop.post([&] { ran = true; });
  loop.quit();
  loop.run();
  EXPECT_TRUE(ran) << "a task posted before quit was lost";
}

TEST(EventLoop, CurrentIsNullOutsideRun) {
  EventLoop loop;
  EXPECT_EQ(EventLoop::current(), nullptr);
  EventLoop* inside = nullptr;
  loop.post([&] {
    inside = EventLoop::current();
    loop.quit();
  });
  run_with_watchdog(loop);
  EXPECT_EQ(inside, &loop);
  EXPECT_EQ(EventLoop::current(), nullptr);
}

TEST(EventLoop, IndexIsKept) {
  EventLoop loop(7);
  EXPECT_EQ(loop.index(), 7u);
}

// The loop-only methods' check: in_loop_thread() (assert_in_loop() aborts on it in debug builds)
// is true only on the thread in run() while the loop runs, and on the thread that constructed the
// loop while it does not. It used to be true on every thread before run().
TEST(EventLoop, OnlyTheCreatorOrTheRunningThreadIsTheLoopThread) {
  auto from_another_thread = [](EventLoop& loop) {
    bool in_loop = true;
    std::thread([&] { in_loop = loop.in_loop_thread(); }).join();
    return in_loop;
  };
  EventLoop loop;
  EXPECT_TRUE(loop.in_loop_thread()) << "the creator sets the loop up before run()";
  EXPECT_FALSE(from_another_thread(loop)) << "before run(), another thread is off the loop";

  std::promise<bool> ran_in_loop;
  loop.post([&] { ran_in_loop.set_value(loop.in_loop_thread()); });
  std::jthread runner([&] { loop.run(); });
  auto result = ran_in_loop.get_future();
  ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(result.get()) << "the thread in run() is the loop thread";
  EXPECT_FALSE(loop.in_loop_thread()) << "while it runs elsewhere, the creator is off the loop";
  EXPECT_FALSE(from_another_thread(loop));
  loop.quit();
  runner.join();

  EXPECT_TRUE(loop.in_loop_thread()) << "after run() returns, the creator tears it down";
  EXPECT_FALSE(from_another_thread(loop));
}

}  // namespace
}  // namespace keel
