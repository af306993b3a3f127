// RedisLink against Debian's redis-server (on a Unix socket) and against loopback stand-ins on
// TCP port 0: replies in order, commands refused while down, a restart reconnects, pending
// callbacks end with nullptr when the link drops, a stalled Redis is found and never holds the
// loop up, and the pending-bytes bound.
#include "cluster/redis_link.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "keel/net/socket.h"
#include "redis_server.h"
#include "test_util.h"

namespace keel::cluster {
namespace {

using keel::test::eventually;
using keel::test::RedisServer;
using namespace std::chrono_literals;

// A loop on a thread of its own, and a way to run code on it and wait for the result.
class LoopThread {
 public:
  LoopThread() : thread_([this] { loop_.run(); }) {
    keel::test::eventually([&] { return started(); });
  }
  ~LoopThread() {
    loop_.quit();
    thread_.join();
  }
  EventLoop& loop() { return loop_; }
  template <class F>
  auto call(F fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    loop_.post([&task] { task(); });
    return result.get();
  }

 private:
  bool started() {
    std::promise<void> p;
    auto f = p.get_future();
    loop_.post([&p] { p.set_value(); });
    return f.wait_for(1s) == std::future_status::ready;
  }
  EventLoop loop_;
  std::thread thread_;
};

struct States {
  std::mutex mutex;
  std::vector<std::pair<bool, std::string>> seen;
  RedisLink::StateFn fn() {
    return [this](bool up, const std::string& why) {
      std::lock_guard lock(mutex);
      seen.emplace_back(up, why);
    };
  }
  size_t count(bool up) {
    std::lock_guard lock(mutex);
    return static_cast<size_t>(
        std::count_if(seen.begin(), seen.end(), [&](auto& s) { return s.first == up; }));
  }
  std::string last_why() {
    std::lock_guard lock(mutex);
    return seen.empty() ? "" : seen.back().second;
  }
};

RedisLink::Options options_for(const std::string& url) {
  RedisLink::Options o;
  o.address = RedisAddress::parse(url);
  o.name = "test";
  o.reply_timeout = 600ms;
  o.ping_interval = 100ms;
  o.connect_timeout = 600ms;
  o.backoff_min = 20ms;
  o.backoff_max = 100ms;
  return o;
}

class RedisLinkTest : public ::testing::Test {
 protected:
  void make_link(RedisLink::Options o) {
    link_ = std::make_unique<RedisLink>(loops_.loop(), std::move(o), states_.fn());
    loops_.call([&] {
      link_->start();
      return 0;
    });
  }
  void TearDown() override {
    loops_.call([&] {
      link_.reset();
      return 0;
    });
  }
  bool up() {
    return loops_.call([&] { return link_->up(); });
  }

  RedisServer redis_;
  LoopThread loops_;
  States states_;
  std::unique_ptr<RedisLink> link_;
};

TEST_F(RedisLinkTest, RepliesComeInOrderForAThousandPipelinedCommands) {
  ASSERT_TRUE(redis_.running());
  make_link(options_for(redis_.url() + "?db=3"));
  ASSERT_TRUE(eventually([&] { return up(); }, 5s)) << states_.last_why();
  std::atomic<int> done{0};
  std::vector<long long> values;
  loops_.call([&] {
    for (int i = 0; i < 1000; ++i)
      EXPECT_TRUE(link_->command({"INCR", "counter"}, [&](const redisReply* r) {
        values.push_back(r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1);
        ++done;
      }));
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return done == 1000; }, 10s));
  loops_.call([&] {
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(values[i], i + 1);
    return 0;
  });
  // It went to database 3 (SELECT at connect), and binary values pass whole.
  EXPECT_EQ(redis_.command_line({"SELECT", "3"}), "+OK");
  std::string binary("a\0b\r\nc", 6);
  std::promise<std::string> got;
  loops_.call([&] {
    link_->command({"SET", "bin", binary}, nullptr);
    link_->command({"GET", "bin"}, [&](const redisReply* r) {
      got.set_value(r && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "?");
    });
    return 0;
  });
  EXPECT_EQ(got.get_future().get(), binary);
}

TEST_F(RedisLinkTest, ARestartIsFoundAndTheLinkComesBack) {
  make_link(options_for(redis_.url()));
  ASSERT_TRUE(eventually([&] { return up(); }, 5s)) << states_.last_why();
  EXPECT_EQ(states_.count(true), 1u);
  redis_.kill();
  ASSERT_TRUE(eventually([&] { return !up(); }, 5s));
  EXPECT_EQ(states_.count(false), 1u);
  EXPECT_NE(states_.last_why().find("lost"), std::string::npos) << states_.last_why();
  // While down, commands are refused at once, not queued.
  EXPECT_FALSE(loops_.call([&] { return link_->command({"PING"}, nullptr); }));
  ASSERT_TRUE(redis_.start());
  ASSERT_TRUE(eventually([&] { return up(); }, 5s)) << states_.last_why();
  EXPECT_EQ(states_.count(true), 2u);
  EXPECT_EQ(loops_.call([&] { return link_->stats().connects; }), 2u);
}

TEST_F(RedisLinkTest, AStalledRedisIsFoundWhileTheLoopKeepsTurning) {
  RedisLink::Options o = options_for(redis_.url());
  o.reply_timeout =
      1500ms;  // a call that waited for the stalled Redis would hold the loop this long
  make_link(o);
  ASSERT_TRUE(eventually([&] { return up(); }, 5s));
  // A ticker on the same loop: the largest gap between its ticks is how long the loop was held.
  std::atomic<int64_t> worst_gap_ms{0};
  auto last = std::make_shared<std::atomic<int64_t>>(0);
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  TimerId ticker = loops_.call([&] {
    *last = now_ms();
    return loops_.loop().run_every(5ms, [&, last] {
      int64_t t = now_ms();
      worst_gap_ms = std::max<int64_t>(worst_gap_ms, t - last->exchange(t));
    });
  });
  std::atomic<int> nulls{0};
  redis_.pause();
  loops_.call([&] {
    for (int i = 0; i < 10; ++i)
      link_->command({"PING"}, [&](const redisReply* r) { nulls += r == nullptr; });
    return 0;
  });
  // Found within reply_timeout and a health check; the pending commands end with nullptr.
  ASSERT_TRUE(eventually([&] { return !up(); }, 5s));
  EXPECT_EQ(nulls, 10);
  EXPECT_NE(states_.last_why().find("no reply within 1500 ms"), std::string::npos)
      << states_.last_why();
  // Reconnects to a stopped server complete in the kernel but are never answered: two more
  // attempts fail, and the link stays down.
  uint64_t failed = loops_.call([&] { return link_->stats().failed_connects; });
  ASSERT_TRUE(eventually(
      [&] { return loops_.call([&] { return link_->stats().failed_connects; }) >= failed + 2; },
      5s));
  EXPECT_FALSE(up());
  redis_.resume();
  ASSERT_TRUE(eventually([&] { return up(); }, 5s)) << states_.last_why();
  loops_.call([&] {
    loops_.loop().cancel_timer(ticker);
    return 0;
  });
  // Under the reply timeout: scheduling on a busy machine, never a wait for Redis.
  EXPECT_LT(worst_gap_ms, 1000) << "the loop was held up while Redis was stalled";
}

TEST_F(RedisLinkTest, PendingBytesAreBounded) {
  RedisLink::Options o = options_for(redis_.url());
  o.max_pending_bytes = 64 * 1024;
  o.reply_timeout = 5s;
  make_link(o);
  ASSERT_TRUE(eventually([&] { return up(); }, 5s));
  redis_.pause();
  std::string value(1000, 'v');
  int accepted = loops_.call([&] {
    int n = 0;
    while (n < 1000 && link_->command({"SET", "k", value}, nullptr)) ++n;
    return n;
  });
  EXPECT_GT(accepted, 40);
  EXPECT_LT(accepted, 80);  // about 64 KiB of 1 KiB commands, then refused
  EXPECT_GE(loops_.call([&] { return link_->stats().refused; }), 1u);
  redis_.resume();
  ASSERT_TRUE(eventually(
      [&] { return loops_.call([&] { return link_->stats().pending_commands; }) == 0; }, 5s));
  EXPECT_TRUE(loops_.call([&] { return link_->command({"PING"}, nullptr); }));
}

// A Redis with a password: the right one (and a user) brings the link up, a wrong one keeps it
// down with Redis's own words, and the password never appears in what is logged or reported.
TEST(RedisLinkAuth, APasswordIsSentFirstAndAWrongOneIsRefused) {
  RedisServer redis("s3cret pass");
  ASSERT_TRUE(redis.running());
  LoopThread loops;
  for (const std::string& url : {redis.url() + "?password=s3cret pass",
                                 redis.url() + "?user=default&password=s3cret pass"}) {
    States states;
    auto link = std::make_unique<RedisLink>(loops.loop(), options_for(url), states.fn());
    loops.call([&] {
      link->start();
      return 0;
    });
    EXPECT_TRUE(eventually([&] { return loops.call([&] { return link->up(); }); }, 5s))
        << states.last_why();
    loops.call([&] {
      link.reset();
      return 0;
    });
  }
  States states;
  auto wrong = std::make_unique<RedisLink>(
      loops.loop(), options_for(redis.url() + "?password=nope"), states.fn());
  loops.call([&] {
    wrong->start();
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return states.count(false) >= 1; }, 5s));
  EXPECT_NE(states.last_why().find("refused: WRONGPASS"), std::string::npos) << states.last_why();
  EXPECT_EQ(states.last_why().find("nope"), std::string::npos) << states.last_why();
  EXPECT_EQ(states.count(true), 0u);
  loops.call([&] {
    wrong.reset();
    return 0;
  });
}

// TCP: a loopback listener on port 0 that accepts and never answers (as a hung Redis or a
// wrong port behind a firewall would): the link never counts as up, and says why.
TEST(RedisLinkTcp, AServerThatNeverAnswersIsNotUp) {
  keel::test::Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 16), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  LoopThread loops;
  States states;
  auto link = std::make_unique<RedisLink>(
      loops.loop(), options_for("redis://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))),
      states.fn());
  loops.call([&] {
    link->start();
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return states.count(false) >= 1; }, 5s));
  EXPECT_NE(states.last_why().find("no answer within 600 ms"), std::string::npos)
      << states.last_why();
  EXPECT_FALSE(loops.call([&] { return link->up(); }));
  EXPECT_EQ(states.count(true), 0u);
  loops.call([&] {
    link.reset();
    return 0;
  });
}

TEST(RedisLinkTcp, NobodyListeningIsRetriedWithBackOff) {
  LoopThread loops;
  States states;
  auto link = std::make_unique<RedisLink>(
      loops.loop(),
      options_for("redis://127.0.0.1:" + std::to_string(keel::test::closed_loopback_port())),
      states.fn());
  loops.call([&] {
    link->start();
    return 0;
  });
  ASSERT_TRUE(eventually(
      [&] { return loops.call([&] { return link->stats().failed_connects; }) >= 3; }, 5s));
  EXPECT_NE(states.last_why().find("Connection refused"), std::string::npos) << states.last_why();
  EXPECT_EQ(states.count(false), 1u);  // told once, not at every attempt
  loops.call([&] {
    link.reset();
    return 0;
  });
}

}  // namespace
}  // namespace keel::cluster
