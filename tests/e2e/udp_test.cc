// UDP through the keel binary: keel echo --listen udp:..., keel cat udp:..., keel bench pingpong
// udp:... on 127.0.0.1 and ::1 with kernel-chosen ports.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <regex>
#include <string>

#include "e2e/subprocess.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

const std::string kKeel = KEEL_BINARY;

// The udp: endpoint a server logged for host (a regex-escaped 127.0.0.1 or [::1]).
std::optional<std::string> logged_udp(Subprocess& p, const std::string& host_pattern) {
  auto port = p.wait_for_stderr("listening on udp:" + host_pattern + R"(:(\d+) \(datagrams)");
  if (!port) return std::nullopt;
  std::string host = host_pattern == R"(\[::1\])" ? "[::1]" : "127.0.0.1";
  return "udp:" + host + ":" + *port;
}

// A UDP port on 127.0.0.1 that nothing is bound to (bound, read, closed).
int free_udp_port() {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), len) != 0) std::abort();
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  return ntohs(sin.sin_port);
}

TEST(Udp, CatSendsLinesAsDatagramsThroughEcho) {
  Subprocess echo({kKeel, "echo", "--listen", "udp:127.0.0.1:0", "--admin", "none"});
  auto ep = logged_udp(echo, R"(127\.0\.0\.1)");
  ASSERT_TRUE(ep) << echo.err();
  Subprocess cat({kKeel, "cat", *ep, "--timeout", "0.5"});
  // Lines become datagrams without their newline (an empty line is an empty datagram); a last
  // line without a newline is sent at end of input; each reply is printed with a newline.
  cat.write_stdin("first line\n\nthird: \t tabs and spaces \nno newline at the end");
  cat.close_stdin();
  ASSERT_EQ(cat.wait(), 0) << cat.err();
  EXPECT_EQ(cat.out(), "first line\n\nthird: \t tabs and spaces \nno newline at the end\n");
  EXPECT_EQ(cat.err(), "");

  echo.signal(SIGTERM);
  EXPECT_EQ(echo.wait(), 0);
  EXPECT_NE(echo.err().find("echo udp: 4 datagrams in (56 bytes), 4 out (56 bytes), 0 truncated"),
            std::string::npos)
      << echo.err();
}

TEST(Udp, ManyLinesOverIpv6) {
  Subprocess echo({kKeel, "echo", "--listen", "udp:[::1]:0", "--admin", "none"});
  auto ep = logged_udp(echo, R"(\[::1\])");
  ASSERT_TRUE(ep) << echo.err();
  std::string lines;
  for (int i = 0; i < 200; ++i) lines += "line " + std::to_string(i) + "\n";
  Subprocess cat({kKeel, "cat", *ep, "--timeout", "0.5"});
  cat.write_stdin(lines);
  cat.close_stdin();
  ASSERT_EQ(cat.wait(), 0) << cat.err();
  EXPECT_EQ(cat.out(), lines);  // loopback keeps them all, and in order
}

TEST(Udp, MixedWithTcpListenersUnderEveryModel) {
  for (const char* model : {"reactor", "threads", "processes"}) {
    SCOPED_TRACE(model);
    Subprocess echo({kKeel, "echo", "--model", model, "-l", "127.0.0.1:0", "-l", "udp:127.0.0.1:0",
                     "--admin", "none"});
    auto udp = logged_udp(echo, R"(127\.0\.0\.1)");
    auto tcp = logged_port(echo);
    ASSERT_TRUE(udp && tcp) << echo.err();

    Subprocess over_udp({kKeel, "cat", *udp, "--timeout", "0.3"});
    over_udp.write_stdin("datagram\n");
    over_udp.close_stdin();
    Subprocess over_tcp({kKeel, "cat", "127.0.0.1:" + std::to_string(*tcp)});
    over_tcp.write_stdin("stream\n");
    over_tcp.close_stdin();
    ASSERT_EQ(over_udp.wait(), 0) << over_udp.err();
    ASSERT_EQ(over_tcp.wait(), 0) << over_tcp.err();
    EXPECT_EQ(over_udp.out(), "datagram\n");
    EXPECT_EQ(over_tcp.out(), "stream\n");
    echo.signal(SIGTERM);
    EXPECT_EQ(echo.wait(), 0) << echo.err();
  }
}

TEST(Udp, BenchPingpongReportsNoLossOnLoopback) {
  Subprocess echo({kKeel, "echo", "--listen", "udp:127.0.0.1:0", "--admin", "none"});
  auto ep = logged_udp(echo, R"(127\.0\.0\.1)");
  ASSERT_TRUE(ep) << echo.err();
  Subprocess bench({kKeel, "bench", "pingpong", *ep, "--conns", "2", "--pipeline", "2",
                    "--duration", "0.5", "--reply-timeout", "5", "--json"});
  ASSERT_EQ(bench.wait(30s), 0) << bench.err();
  std::string out = bench.out();
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(out, m, std::regex(R"("messages":(\d+).*"sent":(\d+),"lost":(\d+))")))
      << out;
  EXPECT_GT(std::stoull(m[1]), 0u) << out;
  EXPECT_EQ(m[2].str(), m[1].str()) << "every datagram sent was answered: " << out;
  EXPECT_EQ(m[3].str(), "0") << out;
  EXPECT_NE(out.find(R"("target":")" + *ep + "\""), std::string::npos) << out;
}

TEST(Udp, BenchPingpongTextNamesTheLoss) {
  Subprocess echo({kKeel, "echo", "--listen", "udp:127.0.0.1:0", "--admin", "none"});
  auto ep = logged_udp(echo, R"(127\.0\.0\.1)");
  ASSERT_TRUE(ep) << echo.err();
  Subprocess bench({kKeel, "bench", "pingpong", *ep, "--duration", "0.2", "--reply-timeout", "5"});
  ASSERT_EQ(bench.wait(30s), 0) << bench.err();
  EXPECT_TRUE(
      std::regex_search(bench.out(), std::regex(R"(\n  loss      0 of [1-9]\d* datagrams)")))
      << bench.out();
}

TEST(Udp, BenchPingpongWithNoServerFailsAndCountsTheLoss) {
  std::string ep = "udp:127.0.0.1:" + std::to_string(free_udp_port());
  Subprocess bench(
      {kKeel, "bench", "pingpong", ep, "--duration", "0.2", "--reply-timeout", "0.1", "--json"});
  EXPECT_EQ(bench.wait(30s), 1) << bench.err();
  EXPECT_NE(bench.out().find(R"("messages":0,)"), std::string::npos) << bench.out();
  EXPECT_TRUE(std::regex_search(bench.out(), std::regex(R"("sent":[1-9]\d*,"lost":[1-9])")))
      << bench.out();
}

TEST(Udp, CatToNothingListeningSaysRefused) {
  std::string ep = "udp:127.0.0.1:" + std::to_string(free_udp_port());
  Subprocess cat({kKeel, "cat", ep, "--timeout", "5"});
  cat.write_stdin("anyone there?\n");
  cat.close_stdin();
  EXPECT_EQ(cat.wait(), 1);
  EXPECT_EQ(cat.err(), "keel cat: " + ep + ": Connection refused (nothing listening there)\n");
}

TEST(Udp, StreamOnlyServicesAndWorkersRefuseUdpListeners) {
  Subprocess chat({kKeel, "chat", "--listen", "udp:127.0.0.1:0", "--admin", "none"});
  EXPECT_EQ(chat.wait(), 1);
  EXPECT_EQ(chat.err(),
            "keel: listen udp:127.0.0.1:0: chat is a stream service; only echo serves udp: "
            "endpoints\n");
  Subprocess workers(
      {kKeel, "echo", "--workers", "2", "--listen", "udp:127.0.0.1:0", "--admin", "none"});
  EXPECT_EQ(workers.wait(), 1);
  EXPECT_NE(workers.err().find("udp: listeners run without --workers"), std::string::npos)
      << workers.err();
  Subprocess bad({kKeel, "cat", "udp:localhost"});
  EXPECT_EQ(bad.wait(), 1);
  EXPECT_EQ(bad.err(),
            "keel: endpoint 'udp:localhost': missing ':PORT' (expected udp:HOST:PORT, "
            "udp:[IPv6]:PORT or udp::PORT)\n");
}

}  // namespace
}  // namespace keel::test
