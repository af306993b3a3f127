// The echo service over real sockets: payload sizes, many clients, half-close, resets, idle
// memory, Unix and IPv6 endpoints.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "echo_fixture.h"
#include "test_util.h"

namespace keel::test {
namespace {

using EchoSharedEngineTest = EchoEngineTest;

// Writes data on one thread while reading the echo on this one (a payload bigger than the
// socket buffers would deadlock a client that writes everything first).
void expect_echo(int fd, const std::string& data, std::chrono::milliseconds timeout = 20s) {
  std::atomic<bool> wrote{false};
  std::jthread writer([&] { wrote = write_all(fd, data, timeout); });
  std::string got = read_exactly(fd, data.size(), timeout);
  writer.join();
  EXPECT_TRUE(wrote.load()) << "could not write " << data.size() << " bytes";
  EXPECT_TRUE(got == data) << describe_difference(got, data);
}

TEST_P(EchoEngineTest, EchoesOneByte) {
  start();
  Fd c = connect_client();
  EXPECT_EQ(round_trip(c.get(), "x"), "x");
}

TEST_P(EchoEngineTest, Echoes64KiB) {
  start();
  Fd c = connect_client();
  expect_echo(c.get(), pattern_bytes(64 * 1024, 64));
}

TEST_P(EchoEngineTest, Echoes8MiB) {
  start();
  Fd c = connect_client();
  expect_echo(c.get(), pattern_bytes(8 * 1024 * 1024, 8));
  EXPECT_EQ(round_trip(c.get(), "still there"), "still there");
}

// Design: "a connection holds no buffer memory while idle; buffers are released when drained".
TEST_F(EchoServerTest, IdleConnectionHoldsNoBufferMemory) {
  start({}, 1);
  Fd c = connect_client();
  expect_echo(c.get(), pattern_bytes(4 * 1024 * 1024, 12));
  size_t memory = 1;
  size_t connections = 0;
  EXPECT_TRUE(eventually(
      [&] {
        memory = 0;
        connections = 0;
        pool().run_on_all_and_wait([&](EventLoop& loop) {
          loop.for_each_connection([&](TcpConnection& conn) {
            ++connections;
            memory += conn.buffer_memory_bytes();
          });
        });
        return connections == 1 && memory == 0;
      },
      5s))
      << connections << " connections holding " << memory << " bytes";
}

// 1,000 clients, all connected at once, each doing 100 echo round trips with its own bytes.
TEST_P(EchoEngineTest, ThousandConcurrentClientsLoseNothing) {
  start({}, 2);
  constexpr int kThreads = 4;
  constexpr int kClientsPerThread = 250;
  constexpr int kClients = kThreads * kClientsPerThread;
  constexpr int kMessages = 100;
  // What this asserts is that nothing is lost, not speed (1,000 threads under a sanitizer on a
  // busy machine are slow): the clients give up when no round trip at all completes for 20 s,
  // or at 100 s overall (the test's ctest timeout is 120 s).
  using Clock = std::chrono::steady_clock;
  const auto hard_deadline = Clock::now() + 100s;
  std::atomic<Clock::rep> last_progress{Clock::now().time_since_epoch().count()};
  auto stalled = [&] {
    const auto now = Clock::now();
    return now >= hard_deadline ||
           now - Clock::time_point(Clock::duration(last_progress.load())) >= 20s;
  };

  std::atomic<int> connected{0};
  std::atomic<bool> go{false};
  std::atomic<int> round_trips{0};
  std::atomic<int> finished_clients{0};
  std::vector<std::string> errors(kThreads);

  auto message = [](int client, int seq) {
    std::string m = "client " + std::to_string(client) + " message " + std::to_string(seq) + " ";
    return m + pattern_bytes(static_cast<size_t>((client * 7 + seq * 13) % 300 + 1),
                             static_cast<uint32_t>(client * 1000 + seq + 1));
  };

  auto run_clients = [&](int t) {
    struct Client {
      Fd fd;
      int seq = 0;
      std::string expected;
      std::string received;
    };
    std::vector<Client> clients(kClientsPerThread);
    std::string& error = errors[t];
    for (int i = 0; i < kClientsPerThread; ++i) {
      clients[i].fd = connect_to(endpoint());
      if (!clients[i].fd.valid()) {
        error = "connect failed: " + std::string(std::strerror(errno));
        break;
      }
      ::fcntl(clients[i].fd.get(), F_SETFL, O_NONBLOCK);
      connected.fetch_add(1);
    }
    if (!eventually([&] { return go.load() || !error.empty(); }, 30s) || !error.empty()) return;

    Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    auto send_next = [&](int i) {
      Client& c = clients[i];
      c.expected = message(t * kClientsPerThread + i, c.seq);
      c.received.clear();
      // Small messages on an idle socket: the kernel takes them whole.
      ssize_t n = ::send(c.fd.get(), c.expected.data(), c.expected.size(), MSG_NOSIGNAL);
      if (n != static_cast<ssize_t>(c.expected.size()))
        error = "short send on client " + std::to_string(i);
    };
    for (int i = 0; i < kClientsPerThread; ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(i);
      ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, clients[i].fd.get(), &ev);
      send_next(i);
    }
    int done = 0;
    epoll_event events[64];
    char buf[4096];
    while (done < kClientsPerThread && error.empty() && !stalled()) {
      int n = ::epoll_wait(ep.get(), events, 64, 100);
      for (int k = 0; k < n && error.empty(); ++k) {
        int i = static_cast<int>(events[k].data.u32);
        Client& c = clients[i];
        ssize_t got = ::recv(c.fd.get(), buf, sizeof buf, 0);
        if (got < 0 && errno == EAGAIN) continue;
        if (got <= 0) {
          error = "client " + std::to_string(i) + " lost its connection at message " +
                  std::to_string(c.seq);
          break;
        }
        c.received.append(buf, static_cast<size_t>(got));
        if (c.received.size() < c.expected.size()) continue;
        if (c.received != c.expected) {
          error = "client " + std::to_string(i) + " message " + std::to_string(c.seq) + ": " +
                  describe_difference(c.received, c.expected);
          break;
        }
        round_trips.fetch_add(1);
        last_progress = Clock::now().time_since_epoch().count();
        if (++c.seq < kMessages) {
          send_next(i);
        } else {
          ++done;
          finished_clients.fetch_add(1);
        }
      }
    }
    if (error.empty() && done < kClientsPerThread)
      error = std::to_string(kClientsPerThread - done) + " clients unfinished: " +
              (Clock::now() >= hard_deadline ? "100 s passed" : "no round trip for 20 s");
  };

  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back(run_clients, t);
    bool all_connected = eventually([&] { return connected.load() == kClients; }, 30s);
    EXPECT_TRUE(all_connected) << connected.load() << " of " << kClients << " connected";
    if (all_connected) {
      EXPECT_TRUE(eventually([&] { return engine().connection_count() == kClients; }, 10s))
          << "server holds " << engine().connection_count() << " connections";
    }
    last_progress = Clock::now().time_since_epoch().count();
    go = true;
  }
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "client thread " << t;
  EXPECT_EQ(round_trips.load(), kClients * kMessages);
  EXPECT_EQ(finished_clients.load(), kClients);
  EXPECT_EQ(engine().stats().accepted, static_cast<uint64_t>(kClients));
  // The client threads closed their sockets on the way out.
  EXPECT_TRUE(eventually([&] { return engine().connection_count() == 0; }, 10s))
      << engine().connection_count() << " connections left";
}

TEST_P(EchoEngineTest, HalfCloseGetsEveryByteThenEof) {
  start();
  Fd c = connect_client();
  const std::string data = pattern_bytes(3 * 1024 * 1024 + 17, 5);
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
  EXPECT_TRUE(got == data) << describe_difference(got, data);
  // Both sides finished: the server lets the connection go.
  EXPECT_TRUE(eventually([&] { return engine().connection_count() == 0; }, 5s));
}

TEST_P(EchoEngineTest, HalfCloseWithNothingSentGetsEof) {
  start();
  Fd c = connect_client();
  ASSERT_TRUE(eventually([&] { return engine().connection_count() == 1; }, 5s));
  ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(got, "");
}

TEST_P(EchoSharedEngineTest, ResetClientDoesNotDisturbOthers) {
  start({}, 2, &recorder_);
  std::vector<Fd> others;
  for (int i = 0; i < 6; ++i) {
    others.push_back(connect_client());
    ASSERT_EQ(round_trip(others.back().get(), "hello " + std::to_string(i)),
              "hello " + std::to_string(i));
  }
  Fd bad = connect_client();
  ASSERT_EQ(round_trip(bad.get(), "about to reset"), "about to reset");
  // Leave echoed bytes unread and data in flight, then reset.
  ASSERT_TRUE(write_all(bad.get(), pattern_bytes(100000, 9)));
  ASSERT_EQ(engine().connection_count(), 7u);
  linger hard{1, 0};
  ASSERT_EQ(::setsockopt(bad.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard), 0);
  bad.reset();

  EXPECT_TRUE(eventually([&] { return engine().connection_count() == 6; }, 5s))
      << engine().connection_count() << " connections";
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < others.size(); ++i) {
      std::string m = pattern_bytes(1000 + i, static_cast<uint32_t>(round * 10 + i + 1));
      EXPECT_TRUE(round_trip(others[i].get(), m) == m) << "client " << i << " round " << round;
    }
  auto closed = recorder_.closed();
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].reason.kind, CloseReason::Kind::reset) << closed[0].reason.to_string();
  EXPECT_EQ(engine().connection_count(), 6u);
}

TEST_P(EchoEngineTest, UnixSocketRoundTrip) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("unix:" + dir.path() + "/echo.sock"));
  start(std::move(options));
  EXPECT_TRUE(endpoint().is_unix());
  EXPECT_EQ(endpoint().unix_path(), dir.path() + "/echo.sock");
  Fd c = connect_client();
  EXPECT_EQ(round_trip(c.get(), "over a unix socket"), "over a unix socket");
  expect_echo(c.get(), pattern_bytes(1 << 20, 3));
}

TEST_P(EchoEngineTest, UnixSocketReplacesStaleSocketFile) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  Endpoint ep = Endpoint::parse("unix:" + dir.path() + "/stale.sock");
  {
    // A socket file left by a dead process: bound, never unlinked, nobody accepting.
    Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::bind(s.get(), ep.sockaddr_ptr(), ep.sockaddr_len()), 0);
  }
  ServerOptions options;
  options.listen.push_back(ep);
  start(std::move(options));
  Fd c = connect_client();
  EXPECT_EQ(round_trip(c.get(), "fresh"), "fresh");
}

TEST_P(EchoEngineTest, Ipv6LoopbackRoundTrip) {
  {
    Fd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    Endpoint any6 = Endpoint::parse("[::1]:0");
    if (!probe.valid() || ::bind(probe.get(), any6.sockaddr_ptr(), any6.sockaddr_len()) != 0)
      GTEST_SKIP() << "::1 is not available here";
  }
  ServerOptions options;
  options.listen.push_back(Endpoint::parse("[::1]:0"));
  start(std::move(options));
  EXPECT_TRUE(endpoint().is_ipv6());
  EXPECT_NE(endpoint().port(), 0);
  Fd c = connect_client();
  EXPECT_EQ(round_trip(c.get(), "over ipv6"), "over ipv6");
}

// Every model serves echo; the recorder only sees connections served in the test's own process.
INSTANTIATE_TEST_SUITE_P(Models, EchoEngineTest, ::testing::ValuesIn(all_models()), model_name);
INSTANTIATE_TEST_SUITE_P(Models, EchoSharedEngineTest, ::testing::ValuesIn(in_process_models()),
                         model_name);

}  // namespace
}  // namespace keel::test
