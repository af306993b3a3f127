// The threads engine (a thread per connection) over real sockets: echo with half-close, the
// connection cap and thread reaping, timers, pause/resume by id, drain, stop and ids. The
// EngineVerbsTest cases run under the reactor too: the Server verbs mean the same everywhere.
// Backpressure (high-water mark, slow consumers) is in threads_backpressure_test.cc.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "threads_fixture.h"

namespace keel::test {
namespace {

std::string first_difference(const std::string& got, const std::string& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         "; first difference at offset " + std::to_string(i);
}

// Byte-exact echo of 4 MiB, the client half-closing after its last byte and reading nothing
// until the server has had to queue output: every byte comes back, then the server's FIN.
TEST_P(EngineVerbsTest, EchoesMiBExactlyWithHalfCloseAndLateReader) {
  constexpr size_t kHighWater = 1024 * 1024;
  ServerOptions options;
  options.high_water_bytes = kHighWater;
  options.socket.send_buffer_bytes = 64 * 1024;  // so the server's own queue must fill
  start(std::move(options));
  EXPECT_STREQ(engine().model(), to_string(GetParam()));
  Fd c = connect_client();
  int small = 64 * 1024;
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ConnectionId id = opened_id(recorder_, 0);

  const std::string data = pattern_bytes(4 * 1024 * 1024, 5);
  std::atomic<bool> wrote{false};
  std::jthread writer([&] {
    wrote = write_all(c.get(), data, 30s);
    if (wrote) ::shutdown(c.get(), SHUT_WR);
  });
  // The queue passes the mark, reading pauses, and the kernel may take a little more of the
  // queue afterwards (far less than half the mark with these buffer sizes).
  ASSERT_TRUE(eventually([&] {
    auto s = snapshot(id);
    return s && s->queued_bytes > kHighWater / 2;
  })) << "the server never queued up to the high-water mark";
  auto s = snapshot(id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->peer.to_string().rfind("127.0.0.1:", 0), 0u) << s->peer.to_string();
  EXPECT_GT(s->bytes_in, 0u);

  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 30s), StreamEnd::eof);
  writer.join();
  EXPECT_TRUE(wrote.load());
  EXPECT_TRUE(got == data) << first_difference(got, data);
  c.reset();
  ASSERT_TRUE(eventually([&] { return recorder_.close_reason(id).has_value(); }));
  EXPECT_EQ(recorder_.close_reason(id)->kind, CloseReason::Kind::finished)
      << recorder_.close_reason(id)->to_string();
}

// Over the cap a client is accepted and closed at once; threads are joined as clients leave,
// so clients coming and going leave no threads behind.
TEST_F(ThreadsEngineTest, MaxConnectionsRejectsOverCapAndThreadsReturnToZero) {
  ServerOptions options;
  options.max_connections = 2;
  start(std::move(options));
  for (int round = 0; round < 3; ++round) {
    Fd a = connect_client();
    Fd b = connect_client();
    ASSERT_EQ(round_trip(a.get(), "a"), "a");
    ASSERT_EQ(round_trip(b.get(), "b"), "b");
    EXPECT_EQ(engine().connection_count(), 2u);
    EXPECT_EQ(engine().stats().threads, 2u);

    Fd over = connect_client();
    EXPECT_NE(read_until_end(over.get(), nullptr, 10s), StreamEnd::timeout);
    EXPECT_EQ(engine().stats().rejected_over_cap, static_cast<uint64_t>(round + 1));

    a.reset();
    b.reset();
    EXPECT_TRUE(eventually([&] {
      return engine().connection_count() == 0 && engine().stats().threads == 0;
    })) << engine().stats().threads
        << " threads left";
  }
  EXPECT_EQ(engine().stats().accepted, 6u);
  Fd d = connect_client();
  EXPECT_EQ(round_trip(d.get(), "d"), "d");
}

// Clients come and go on several threads while another thread lists the connections and sends
// to all of them (empty sends: lookups without disturbing the echo). Under TSan this is the
// registry's race test.
TEST_P(EngineVerbsTest, ClientsComeAndGoWhileAnotherThreadVisitsAndSends) {
  start();
  std::atomic<bool> done{false};
  std::atomic<size_t> visits{0};
  std::jthread observer([&] {
    while (!done) {
      std::vector<ConnectionId> ids;
      engine().visit([&](const ClientSnapshot& s) { ids.push_back(s.id); });
      engine().send_many(ids, "");
      for (ConnectionId id : ids) engine().send(id, "");
      (void)engine().stats();
      ++visits;
      std::this_thread::yield();
    }
  });
  constexpr int kThreads = 4;
  constexpr int kClientsPerThread = 25;
  constexpr size_t kClients = kThreads * kClientsPerThread;
  std::atomic<int> good{0};
  {
    std::vector<std::jthread> clients;
    for (int t = 0; t < kThreads; ++t)
      clients.emplace_back([&, t] {
        for (int i = 0; i < kClientsPerThread; ++i) {
          Fd c = connect_to(endpoint_);
          const std::string data = pattern_bytes(1024, static_cast<uint32_t>(t * 1000 + i + 1));
          bool ok = c.valid();
          for (int round = 0; ok && round < 10; ++round) ok = round_trip(c.get(), data) == data;
          if (ok) ++good;
        }
      });
  }
  done = true;
  observer.join();
  EXPECT_EQ(static_cast<size_t>(good.load()), kClients);
  EXPECT_GT(visits.load(), 0u);
  EXPECT_TRUE(eventually([&] {
    return engine().stats().threads == 0 && recorder_.closed().size() == kClients;
  })) << engine().stats().threads
      << " threads, " << recorder_.closed().size() << " closed";
  EXPECT_EQ(engine().stats().accepted, kClients);
}

// "go" starts three timers and cancels one; "close" starts a timer and closes at once.
class TimerService final : public RecordingService {
 public:
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    std::string cmd = in.take_all();
    if (cmd == "go") {
      TimerId cancelled =
          server.start_timer(id, 5ms, [&server, id] { server.send(id, "cancelled\n"); });
      server.start_timer(id, 30ms, [&server, id] {
        server.send(id, "one\n");
        // A timer started inside a timer.
        server.start_timer(id, 1ms, [&server, id] { server.send(id, "two\n"); });
      });
      server.cancel_timer(id, cancelled);
      server.cancel_timer(id, 0);
      started_ = cancelled != 0;
    } else if (cmd == "close") {
      server.start_timer(id, 0ms, [this] { fired_after_close_ = true; });
      server.close(id, "bye");
    }
  }
  std::atomic<bool> started_{false};
  std::atomic<bool> fired_after_close_{false};
};

TEST_P(EngineVerbsTest, TimersFireAndCancelledTimersDoNot) {
  TimerService& service = own_service<TimerService>();
  start({}, &service);
  Fd c = connect_client();
  ConnectionId id = opened_id(service, 0);
  ASSERT_TRUE(write_all(c.get(), "go"));
  // The cancelled timer was due first: had it fired, its line would come first.
  EXPECT_EQ(read_exactly(c.get(), 8), "one\ntwo\n");
  EXPECT_TRUE(service.started_.load());
  // Timers belong to the connection's own thread.
  EXPECT_EQ(engine().start_timer(id, 1ms, [] {}), 0u);

  Fd d = connect_client();
  ConnectionId closing = opened_id(service, 1);
  ASSERT_TRUE(write_all(d.get(), "close"));
  EXPECT_NE(read_until_end(d.get(), nullptr, 10s), StreamEnd::timeout);
  ASSERT_TRUE(eventually([&] { return engine().connection_count() == 1; }));
  EXPECT_FALSE(service.fired_after_close_.load()) << "a timer ran after its connection closed";
  ASSERT_TRUE(service.close_reason(closing).has_value());
  EXPECT_EQ(service.close_reason(closing)->kind, CloseReason::Kind::local);
  EXPECT_EQ(service.close_reason(closing)->detail, "bye");
}

TEST_P(EngineVerbsTest, PauseAndResumeById) {
  start();
  Fd c = connect_client();
  ASSERT_EQ(round_trip(c.get(), "a"), "a");
  ConnectionId id = opened_id(recorder_, 0);
  EXPECT_TRUE(engine().pause_reading(id));
  EXPECT_TRUE(engine().pause_reading(id));  // idempotent
  // From another thread the pause may be posted (reactor): it holds once the snapshot says so.
  ASSERT_TRUE(eventually([&] { return snapshot(id)->reading_paused; }));
  ASSERT_TRUE(write_all(c.get(), "b"));
  EXPECT_FALSE(wait_ready(c.get(), POLLIN, 200ms)) << "a paused connection was still read";
  EXPECT_EQ(snapshot(id)->bytes_in, 1u);
  EXPECT_TRUE(snapshot(id)->reading_paused);
  EXPECT_TRUE(engine().resume_reading(id));
  EXPECT_EQ(read_exactly(c.get(), 1), "b");
  EXPECT_EQ(round_trip(c.get(), "c"), "c");
  EXPECT_FALSE(snapshot(id)->reading_paused);
  // Idle again: the connection holds no buffer memory.
  EXPECT_TRUE(eventually([&] { return snapshot(id)->buffer_bytes == 0; }))
      << snapshot(id)->buffer_bytes << " bytes held";

  // Once the connection is gone its id is stale for every verb.
  c.reset();
  ASSERT_TRUE(eventually([&] { return recorder_.close_reason(id).has_value(); }));
  EXPECT_FALSE(engine().pause_reading(id));
  EXPECT_FALSE(engine().resume_reading(id));
  EXPECT_FALSE(engine().send(id, "x"));
  EXPECT_FALSE(engine().shutdown(id));
  EXPECT_FALSE(engine().close(id, "x"));
  EXPECT_FALSE(engine().close_gracefully(id, "x", "x", 1s));
  EXPECT_FALSE(snapshot(id).has_value());
}

// drain: a client that finishes when the server does is closed cleanly; one that never
// finishes is forced when the timeout runs out; nothing new is accepted.
TEST_P(EngineVerbsTest, DrainFinishesCooperativeClientsAndForcesTheRest) {
  start();
  Fd coop = connect_client();
  ASSERT_EQ(round_trip(coop.get(), "1"), "1");
  Fd stubborn = connect_client();
  ASSERT_EQ(round_trip(stubborn.get(), "2"), "2");
  ConnectionId coop_id = opened_id(recorder_, 0);
  ConnectionId stubborn_id = opened_id(recorder_, 1);
  std::jthread coop_client([&] {
    read_until_end(coop.get(), nullptr, 10s);  // the server's FIN
    coop.reset();                              // ours
  });

  EXPECT_EQ(engine().drain(500ms), 1u);
  coop_client.join();
  EXPECT_EQ(engine().connection_count(), 0u);
  EXPECT_TRUE(eventually([&] { return engine().stats().threads == 0; }));
  ASSERT_TRUE(recorder_.close_reason(coop_id).has_value());
  EXPECT_EQ(recorder_.close_reason(coop_id)->kind, CloseReason::Kind::finished);
  EXPECT_EQ(recorder_.close_reason(coop_id)->detail, "server stopping");
  ASSERT_TRUE(recorder_.close_reason(stubborn_id).has_value());
  EXPECT_EQ(recorder_.close_reason(stubborn_id)->kind, CloseReason::Kind::local);
  EXPECT_EQ(recorder_.close_reason(stubborn_id)->detail, "drain timeout");
  EXPECT_FALSE(connect_to(endpoint_).valid()) << "still accepting after drain";
}

TEST_P(EngineVerbsTest, StopClosesLiveClientsAndJoinsThreads) {
  start();
  std::vector<Fd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect_client());
    ASSERT_EQ(round_trip(clients.back().get(), "x"), "x");
  }
  engine().stop();
  EXPECT_EQ(engine().stats().threads, 0u);
  EXPECT_EQ(engine().connection_count(), 0u);
  auto closed = recorder_.closed();
  ASSERT_EQ(closed.size(), 3u);
  for (const auto& c : closed) {
    EXPECT_EQ(c.reason.kind, CloseReason::Kind::local);
    EXPECT_EQ(c.reason.detail, "server stopped");
  }
  for (Fd& c : clients) EXPECT_NE(read_until_end(c.get(), nullptr, 10s), StreamEnd::timeout);
  engine().stop();  // idempotent
  EXPECT_FALSE(engine().send(closed[0].id, "x"));
}

// Ids are unique in the process: another engine's connection (same slot) is not ours.
TEST_F(ThreadsEngineTest, IdsAreUniqueAcrossEngines) {
  start();
  RecordingService other_service;
  ThreadsOptions options;
  options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  ThreadsEngine other(std::move(options), other_service);
  other.start();
  Fd a = connect_client();
  Fd b = connect_to(other.endpoints().front());
  ASSERT_EQ(round_trip(a.get(), "a"), "a");
  ASSERT_EQ(round_trip(b.get(), "b"), "b");
  ConnectionId mine = opened_id(recorder_, 0);
  ConnectionId theirs = opened_id(other_service, 0);
  EXPECT_EQ(mine.slot(), theirs.slot());
  EXPECT_FALSE(mine == theirs);
  EXPECT_FALSE(engine().send(theirs, "wrong engine"));
  EXPECT_TRUE(other.send(theirs, "right engine"));
  EXPECT_EQ(read_exactly(b.get(), 12), "right engine");
  EXPECT_FALSE(engine().send(ConnectionId(), "invalid"));
}

INSTANTIATE_TEST_SUITE_P(Models, EngineVerbsTest, ::testing::ValuesIn(in_process_models()),
                         model_name);

}  // namespace
}  // namespace keel::test
