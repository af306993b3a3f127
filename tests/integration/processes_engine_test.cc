// ProcessesEngine in-process: a forked child per connection serving it with a one-thread
// reactor (echo itself, half-close included: the EchoEngineTest suite). A child that aborts ends
// only its own client, no zombies and no spawner left, children served while other threads allocate
// (the spawner), max_connections defers accepting, visit/kick, and services sharing state refused.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "keel/engine/processes.h"
#include "keel/error.h"
#include "proc_util.h"
#include "services/chat/chat_service.h"
#include "test_util.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

// Echo that calls abort() when a line "abort" arrives: a crash inside a service callback.
class FragileEcho final : public Service {
 public:
  const char* name() const noexcept override { return "fragile-echo"; }
  bool connections_independent() const noexcept override { return true; }
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    if (in.view().find("abort\n") != std::string_view::npos) std::abort();
    server.send(id, in.view());
    in.consume_all();
  }
};

class ProcessesEngineTest : public ::testing::Test {
 protected:
  void start(size_t max_connections = 0) {
    ServerOptions options;
    options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    options.max_connections = max_connections;
    engine_ = std::make_unique<ProcessesEngine>(std::move(options), service_);
    engine_->on_abnormal_exit([this](const ClientSnapshot&, int status) {
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ++aborted_;
    });
    engine_->start();
    endpoint_ = engine_->endpoints().front();
  }
  void TearDown() override {
    if (engine_) engine_->stop();
    engine_.reset();
    // Every child and the spawner were reaped: none is left, running or zombie.
    EXPECT_EQ(children_of(::getpid()).size(), 0u);
  }
  Fd connect_client() { return connect_to(endpoint_); }

  FragileEcho service_;
  std::unique_ptr<ProcessesEngine> engine_;
  Endpoint endpoint_;
  std::atomic<int> aborted_{0};
};

// Byte-exact echo with half-close under this engine: the EchoEngineTest suite (echo_test.cc).

TEST_F(ProcessesEngineTest, AbortInOneChildEndsOnlyThatClient) {
  start();
  Fd good = connect_client(), bad = connect_client();
  EXPECT_EQ(round_trip(good.get(), "before\n"), "before\n");
  EXPECT_EQ(round_trip(bad.get(), "fine so far\n"), "fine so far\n");
  ASSERT_TRUE(write_all(bad.get(), "abort\n"));
  std::string got;
  StreamEnd end = read_until_end(bad.get(), &got, 5s);
  EXPECT_TRUE(end == StreamEnd::eof || end == StreamEnd::reset) << to_string(end);
  EXPECT_EQ(got, "");
  EXPECT_TRUE(eventually([&] { return aborted_.load() == 1; }, 5s));
  EXPECT_EQ(round_trip(good.get(), "after\n"), "after\n");
  Fd later = connect_client();
  EXPECT_EQ(round_trip(later.get(), "new client\n"), "new client\n");
}

TEST_F(ProcessesEngineTest, TwoHundredShortConnectionsLeaveNoZombie) {
  start();
  for (int i = 0; i < 200; ++i) {
    Fd c = connect_client();
    ASSERT_EQ(round_trip(c.get(), "x"), "x") << "connection " << i;
  }
  EXPECT_TRUE(eventually([&] { return engine_->connection_count() == 0; }, 10s))
      << engine_->connection_count() << " children left";
  EXPECT_TRUE(eventually([&] { return connection_processes(::getpid()).empty(); }, 10s))
      << "child processes left (zombies?): " << describe(connection_processes(::getpid()));
  EXPECT_EQ(engine_->stats().accepted, 200u);
}

// Children are forked by the single-threaded spawner, never by the engine's thread while other
// threads of this process hold locks: a child forked mid-allocation inherits the allocator's
// lock held forever (glibc guards its arenas around fork(); AddressSanitizer's allocator in
// GCC 12 does not, so under ASan such a child hangs in its first malloc and its client waits).
// Exits 0 when all 300 clients were echoed and stop() left no process behind; else says why.
[[noreturn]] void serve_while_other_threads_allocate() {
  FragileEcho service;
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  ProcessesEngine engine(std::move(options), service);
  engine.start();
  Endpoint endpoint = engine.endpoints().front();
  std::atomic<bool> churn{true};
  int served = 0;
  {
    std::vector<std::jthread> churners;
    for (int t = 0; t < 4; ++t)
      churners.emplace_back([&churn, t] {
        std::vector<std::string> keep(64);
        for (size_t i = 0; churn.load(std::memory_order_relaxed); ++i)
          keep[i % keep.size()] = std::string(16 + (i * 7 + t) % 48, 'x');
      });
    for (int i = 0; i < 300; ++i) {
      Fd c = connect_to(endpoint);
      if (c.valid() && round_trip(c.get(), "ping\n", 3s) == "ping\n") ++served;
    }
    churn = false;
  }
  std::string why;
  if (served != 300) why += std::to_string(300 - served) + " of 300 clients not served; ";
  if (!eventually([&] { return engine.connection_count() == 0; }, 10s))
    why += std::to_string(engine.connection_count()) + " children left; ";
  std::vector<ChildProcess> ours = children_of(::getpid());
  if (ours.size() != 1 || comm_of(ours[0].pid) != "keel-spawner")
    why += std::to_string(ours.size()) + " children of ours, expected only the spawner; ";
  engine.stop();
  if (!children_of(::getpid()).empty()) why += "a process is left after stop(); ";
  std::fprintf(stderr, "%s\n", why.empty() ? "all served" : why.c_str());
  std::fflush(stderr);
  std::_Exit(why.empty() ? 0 : 1);
}

// In a fresh process (a death test re-runs this binary): the allocation churn fills
// AddressSanitizer's quarantine, and every later fork in this process would pay for copying it.
TEST(ProcessesEngine, EveryClientIsServedWhileOtherThreadsAllocate) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(serve_while_other_threads_allocate(), ::testing::ExitedWithCode(0), "all served");
}

TEST_F(ProcessesEngineTest, MaxConnectionsDefersAcceptingUntilAChildExits) {
  start(2);
  Fd a = connect_client(), b = connect_client();
  EXPECT_EQ(round_trip(a.get(), "a"), "a");
  EXPECT_EQ(round_trip(b.get(), "b"), "b");
  Fd third = connect_client();  // sits in the backlog: nobody accepts it at the cap
  ASSERT_TRUE(third.valid());
  ASSERT_TRUE(write_all(third.get(), "waiting"));
  // Proving an absence needs a bounded wait: no child serves the third client yet.
  EXPECT_FALSE(wait_ready(third.get(), POLLIN, 300ms)) << "served over the cap";
  EXPECT_EQ(engine_->stats().accepted, 2u);
  EXPECT_EQ(engine_->stats().processes, 2u);
  a.reset();  // its child sees EOF, finishes and exits: a slot frees up
  EXPECT_EQ(read_exactly(third.get(), 7, 5s), "waiting");
  EXPECT_EQ(round_trip(b.get(), "still b"), "still b");
}

TEST_F(ProcessesEngineTest, VisitListsChildrenAndKickEndsOne) {
  start();
  Fd c = connect_client();
  EXPECT_EQ(round_trip(c.get(), "hi"), "hi");
  std::vector<ClientSnapshot> seen;
  engine_->visit([&](const ClientSnapshot& s) { seen.push_back(s); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_GT(seen[0].pid, 0);
  EXPECT_EQ(seen[0].peer.to_string().rfind("127.0.0.1:", 0), 0u) << seen[0].peer.to_string();
  EXPECT_FALSE(engine_->send(seen[0].id, "x")) << "the parent cannot reach a child's socket";
  EXPECT_TRUE(engine_->close_gracefully(seen[0].id, "", "kicked", 2s));
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);  // the child's FIN
  c.reset();  // ours: the child's connection is complete and it exits (before the 2 s grace)
  EXPECT_TRUE(eventually([&] { return engine_->connection_count() == 0; }, 5s));
  EXPECT_FALSE(engine_->close(seen[0].id, "stale")) << "ids are never reused";
}

TEST_F(ProcessesEngineTest, DrainFinishesChildrenGracefully) {
  start();
  Fd c = connect_client();
  EXPECT_EQ(round_trip(c.get(), "hi"), "hi");
  std::jthread client_side([&] {
    // The child's drain sends FIN; answering it lets the child finish cleanly.
    std::string got;
    if (read_until_end(c.get(), &got, 5s) == StreamEnd::eof) ::shutdown(c.get(), SHUT_WR);
  });
  EXPECT_EQ(engine_->drain(5s), 0u);
  EXPECT_EQ(engine_->connection_count(), 0u);
}

TEST(ProcessesEngine, RefusesAServiceThatSharesStateAcrossConnections) {
  chat::ChatService chat{chat::ChatOptions{}};
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  try {
    ProcessesEngine engine(std::move(options), chat);
    FAIL() << "chat was accepted under the processes model";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "chat shares state across connections: it runs under --model reactor or "
                 "threads, not processes");
  }
}

}  // namespace
}  // namespace keel::test
