// The keel binary driven as a subprocess, as a user would: echo, serve, cat, errors, signals.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "e2e/subprocess.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

const std::string kKeel = KEEL_BINARY;

// A TCP socket on 127.0.0.1 with a kernel-chosen port; listening when backlog >= 0.
struct LoopbackSocket {
  int fd = -1;
  int port = 0;
  explicit LoopbackSocket(int backlog) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sin), len) != 0) std::abort();
    if (backlog >= 0 && ::listen(fd, backlog) != 0) std::abort();
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
    port = ntohs(sin.sin_port);
  }
  ~LoopbackSocket() { ::close(fd); }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port); }
};

int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads once with a timeout: bytes read, 0 at EOF, -1 on error or timeout.
ssize_t read_with_timeout(int fd, char* buf, size_t n, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return -1;
  return ::recv(fd, buf, n, 0);
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (auto& c : s) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 16);
  }
  return s;
}

TEST(Cli, VersionAndHelpForEverySubcommand) {
  Subprocess version({kKeel, "--version"});
  ASSERT_EQ(version.wait(), 0);
  EXPECT_EQ(version.out(), "keel 0.1.0\n");
  for (const char* sub : {"serve", "echo", "chat", "cat", "bench", "ctl"}) {
    Subprocess help({kKeel, sub, "--help"});
    ASSERT_EQ(help.wait(), 0) << sub;
    EXPECT_NE(help.out().find("Usage"), std::string::npos) << sub;
  }
  Subprocess none({kKeel});
  EXPECT_EQ(none.wait(), 2);
}

TEST(Cli, CatRoundTripsThroughEchoAndHalfCloses) {
  Subprocess echo({kKeel, "echo", "--listen", "127.0.0.1:0", "--threads", "2", "--admin", "none"});
  auto port = logged_port(echo);
  ASSERT_TRUE(port) << echo.err();
  std::string data = pattern(300 * 1024);
  Subprocess cat({kKeel, "cat", "127.0.0.1:" + std::to_string(*port)});
  cat.write_stdin(data);
  cat.close_stdin();  // EOF: cat half-closes, the server echoes the rest, then FINs
  ASSERT_EQ(cat.wait(), 0) << cat.err();
  EXPECT_TRUE(cat.out() == data) << "got " << cat.out().size() << " of " << data.size() << " bytes";
  EXPECT_EQ(cat.err(), "");
}

TEST(Cli, CatOverUnixSocket) {
  char dir[] = "/tmp/keel-e2e-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string ep = std::string("unix:") + dir + "/echo.sock";
  Subprocess echo({kKeel, "echo", "--listen", ep, "--admin", "none"});
  ASSERT_TRUE(echo.wait_for_stderr("listening on " + ep)) << echo.err();
  Subprocess cat({kKeel, "cat", ep});
  cat.write_stdin("over a unix socket\n");
  cat.close_stdin();
  ASSERT_EQ(cat.wait(), 0) << cat.err();
  EXPECT_EQ(cat.out(), "over a unix socket\n");
  echo.signal(SIGTERM);
  EXPECT_EQ(echo.wait(), 0);
  EXPECT_NE(::access((std::string(dir) + "/echo.sock").c_str(), F_OK), 0) << "socket file left";
  ::rmdir(dir);
}

TEST(Cli, CatRefusedIsOneLineAndExitOne) {
  int port;
  {
    LoopbackSocket closed(-1);  // bound, never listening, then closed: nothing is there
    port = closed.port;
  }
  Subprocess cat({kKeel, "cat", "127.0.0.1:" + std::to_string(port)});
  cat.close_stdin();
  EXPECT_EQ(cat.wait(), 1);
  EXPECT_EQ(cat.err(),
            "keel cat: connect 127.0.0.1:" + std::to_string(port) + ": Connection refused\n");
}

TEST(Cli, CatResetExitsThree) {
  LoopbackSocket server(8);
  Subprocess cat({kKeel, "cat", server.endpoint()});
  int conn = ::accept4(server.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  cat.write_stdin("x");
  char c;
  ASSERT_EQ(read_with_timeout(conn, &c, 1, 5000), 1);
  linger lg{1, 0};  // close with RST
  ::setsockopt(conn, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(conn);
  EXPECT_EQ(cat.wait(), 3);
  EXPECT_NE(cat.err().find("Connection reset by peer"), std::string::npos) << cat.err();
}

TEST(Cli, CatIdleTimeoutExitsFour) {
  LoopbackSocket server(8);
  Subprocess cat({kKeel, "cat", "--idle-timeout", "0.2", server.endpoint()});
  int conn = ::accept4(server.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  EXPECT_EQ(cat.wait(), 4);  // stdin stays open and the server says nothing
  EXPECT_NE(cat.err().find("no data for"), std::string::npos) << cat.err();
  ::close(conn);
}

TEST(Cli, CatConnectTimeoutExitsFour) {
  // A listener whose accept queue is full drops new SYNs, so connect hangs.
  LoopbackSocket server(0);
  std::vector<int> fillers;
  for (int i = 0; i < 16; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(static_cast<uint16_t>(server.port));
    ::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    fillers.push_back(fd);
  }
  Subprocess cat({kKeel, "cat", "--connect-timeout", "300", server.endpoint()});
  cat.close_stdin();
  EXPECT_EQ(cat.wait(), 4);
  EXPECT_NE(cat.err().find("timed out after 300 ms"), std::string::npos) << cat.err();
  for (int fd : fillers) ::close(fd);
}

TEST(Cli, UnparsableEndpointIsOneLine) {
  Subprocess cat({kKeel, "cat", "nonsense"});
  EXPECT_EQ(cat.wait(), 1);
  EXPECT_EQ(cat.err(),
            "keel: endpoint 'nonsense': missing ':PORT' (expected HOST:PORT, [IPv6]:PORT, :PORT or "
            "unix:/path)\n");
  Subprocess echo({kKeel, "echo", "--listen", "127.0.0.1:70000", "--admin", "none"});
  EXPECT_EQ(echo.wait(), 1);
  EXPECT_NE(echo.err().find("port must be a number from 0 to 65535"), std::string::npos);
}

TEST(Cli, PortInUseNamesTheAddress) {
  LoopbackSocket taken(8);
  Subprocess echo({kKeel, "echo", "--listen", taken.endpoint(), "--admin", "none"});
  EXPECT_EQ(echo.wait(), 1);
  EXPECT_EQ(echo.err(), "keel: bind " + taken.endpoint() +
                            ": Address already in use (another process is listening there: stop "
                            "it or choose another --listen)\n");
}

TEST(Cli, LowPortWithoutPrivilegeSaysWhy) {
  // Run as an unprivileged user: as root ("nobody" = 65534), or as ourselves otherwise.
  std::optional<uid_t> uid;
  if (::geteuid() == 0) uid = 65534;
  // Find a low port that is free; containers may allow unprivileged low ports: then skip.
  Subprocess probe({kKeel, "echo", "--listen", "127.0.0.1:1", "--admin", "none"}, uid);
  auto code = probe.wait(2s);
  if (!code) GTEST_SKIP() << "unprivileged processes may bind low ports here";
  EXPECT_EQ(*code, 1);
  EXPECT_EQ(probe.err(),
            "keel: bind 127.0.0.1:1: Permission denied (ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE)\n");
}

TEST(Cli, ServeDrainsOnSigterm) {
  Subprocess serve({kKeel, "serve", "--echo", "127.0.0.1:0", "--chat", "127.0.0.1:0", "--hub",
                    "127.0.0.1:0", "--admin", "none"});
  auto port = logged_port(serve);
  ASSERT_TRUE(port) << serve.err();
  int fd = connect_loopback(*port);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, "ping", 4, MSG_NOSIGNAL), 4);
  char buf[16];
  ASSERT_EQ(read_with_timeout(fd, buf, sizeof buf, 5000), 4);
  serve.signal(SIGTERM);
  ASSERT_TRUE(serve.wait_for_stderr("draining 1 connection")) << serve.err();
  // Echo serves a client through the drain until the client finishes: what it sends after the
  // signal still comes back, and its FIN is answered with ours (EOF, not a reset).
  ASSERT_EQ(::send(fd, "more", 4, MSG_NOSIGNAL), 4);
  ASSERT_EQ(read_with_timeout(fd, buf, sizeof buf, 5000), 4);
  EXPECT_EQ(std::string(buf, 4), "more");
  ::shutdown(fd, SHUT_WR);
  EXPECT_EQ(read_with_timeout(fd, buf, sizeof buf, 5000), 0);
  ::close(fd);
  EXPECT_EQ(serve.wait(), 0);
  EXPECT_NE(serve.err().find("info stopped"), std::string::npos) << serve.err();
  // No longer listening.
  EXPECT_EQ(connect_loopback(*port), -1);
}

// Under every model, echo keeps a client through SIGTERM until the client finishes, and chat
// tells its members the server is going down before it closes them.
TEST(Cli, EchoDrainServesEachClientUntilItFinishesUnderEveryModel) {
  for (const char* model : {"reactor", "threads", "processes"}) {
    SCOPED_TRACE(model);
    Subprocess echo(
        {kKeel, "echo", "--listen", "127.0.0.1:0", "--model", model, "--admin", "none"});
    auto port = logged_port(echo);
    ASSERT_TRUE(port) << echo.err();
    int fd = connect_loopback(*port);
    ASSERT_GE(fd, 0);
    char buf[16];
    ASSERT_EQ(::send(fd, "before", 6, MSG_NOSIGNAL), 6);
    ASSERT_EQ(read_with_timeout(fd, buf, sizeof buf, 5000), 6);
    echo.signal(SIGTERM);
    ASSERT_TRUE(echo.wait_for_stderr("draining 1 connection")) << echo.err();
    ASSERT_EQ(::send(fd, "after", 5, MSG_NOSIGNAL), 5);
    ASSERT_EQ(read_with_timeout(fd, buf, sizeof buf, 5000), 5);
    EXPECT_EQ(std::string(buf, 5), "after");
    ::shutdown(fd, SHUT_WR);
    EXPECT_EQ(read_with_timeout(fd, buf, sizeof buf, 5000), 0);
    ::close(fd);
    EXPECT_EQ(echo.wait(), 0);
    EXPECT_NE(echo.err().find("info stopped"), std::string::npos) << echo.err();
  }
}

TEST(Cli, ChatDrainTellsMembersTheServerIsGoingDown) {
  Subprocess chat({kKeel, "chat", "--listen", "127.0.0.1:0", "--admin", "none"});
  auto port = logged_port(chat);
  ASSERT_TRUE(port) << chat.err();
  int fd = connect_loopback(*port);
  ASSERT_GE(fd, 0);
  std::string got;
  char buf[512];
  // The welcome arrives first: the member is in.
  ssize_t n = read_with_timeout(fd, buf, sizeof buf, 5000);
  ASSERT_GT(n, 0);
  chat.signal(SIGTERM);
  for (;;) {
    n = read_with_timeout(fd, buf, sizeof buf, 5000);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(n, 0) << "no FIN after the last line";
  EXPECT_NE(got.find("* server going down\n"), std::string::npos) << got;
  ::close(fd);
  EXPECT_EQ(chat.wait(), 0);
}

TEST(Cli, DrainTimeoutClosesStragglers) {
  Subprocess echo(
      {kKeel, "echo", "--listen", "127.0.0.1:0", "--drain-timeout", "0.2", "--admin", "none"});
  auto port = logged_port(echo);
  ASSERT_TRUE(port) << echo.err();
  int fd = connect_loopback(*port);  // never closes its side, so the drain cannot finish
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(eventually([&] {
    // Wait until the server has the connection (an echo proves it).
    return ::send(fd, "a", 1, MSG_NOSIGNAL) == 1;
  }));
  char buf[4];
  ASSERT_EQ(read_with_timeout(fd, buf, 1, 5000), 1);
  echo.signal(SIGINT);
  EXPECT_EQ(echo.wait(), 0);
  EXPECT_NE(echo.err().find("1 connection did not finish in time"), std::string::npos)
      << echo.err();
  ::close(fd);
}

}  // namespace
}  // namespace keel::test
