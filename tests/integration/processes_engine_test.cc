// ProcessesEngine in-process: a forked child per connection serving it with a one-thread
// reactor. Byte-exact echo with half-close, a child that aborts ends only its own client, no
// zombies, max_connections defers accepting, visit/kick, and services sharing state refused.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "keel/engine/processes.h"
#include "keel/error.h"
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

// Processes whose parent is pid, from /proc/*/stat (ppid is the 4th field).
size_t children_of(pid_t parent) {
  size_t n = 0;
  DIR* dir = ::opendir("/proc");
  if (!dir) return 0;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(paren + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) ++n;
  }
  ::closedir(dir);
  return n;
}

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
    // Every child was reaped: none is left, running or zombie.
    EXPECT_EQ(children_of(::getpid()), 0u);
  }
  Fd connect_client() { return connect_to(endpoint_); }

  FragileEcho service_;
  std::unique_ptr<ProcessesEngine> engine_;
  Endpoint endpoint_;
  std::atomic<int> aborted_{0};
};

TEST_F(ProcessesEngineTest, EchoesByteExactThroughHalfClose) {
  start();
  Fd c = connect_client();
  const std::string data = pattern_bytes(2 * 1024 * 1024 + 3, 9);
  std::atomic<bool> wrote{false};
  std::jthread writer([&] {
    wrote = write_all(c.get(), data, 20s);
    ::shutdown(c.get(), SHUT_WR);
  });
  std::string got;
  StreamEnd end = read_until_end(c.get(), &got, 20s);
  writer.join();
  EXPECT_TRUE(wrote.load());
  EXPECT_EQ(end, StreamEnd::eof) << to_string(end);
  EXPECT_TRUE(got == data) << "got " << got.size() << " of " << data.size() << " bytes";
  EXPECT_TRUE(eventually([&] { return engine_->connection_count() == 0; }, 5s));
  EXPECT_EQ(engine_->stats().accepted, 1u);
}

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
  EXPECT_TRUE(eventually([&] { return children_of(::getpid()) == 0; }, 10s))
      << children_of(::getpid()) << " child processes left (zombies?)";
  EXPECT_EQ(engine_->stats().accepted, 200u);
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
