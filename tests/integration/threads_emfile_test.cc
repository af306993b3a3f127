// The threads engine out of file descriptors (each client costs two: socket and eventfd): the
// control thread must not spin, clients it cannot serve are closed rather than left hanging,
// and the ones it serves keep working. The server runs in a forked child with a low
// RLIMIT_NOFILE so the limit does not touch the test process.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "keel/engine/threads.h"
#include "services/echo/echo_service.h"
#include "test_util.h"

namespace keel::test {
namespace {

constexpr rlim_t kChildFdLimit = 64;
constexpr int kExtraClients = 120;

struct Report {
  int port = 0;
  uint64_t accepted = 0;
  uint64_t accept_errors = 0;
  uint64_t fd_exhaustion = 0;
};

// The child: an echo server with few descriptors. Each byte on commands asks for a report;
// EOF on commands ends it. Never returns.
[[noreturn]] void run_child(int commands, int reports) {
  try {
    rlimit limit{kChildFdLimit, kChildFdLimit};
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::_exit(10);
    EchoService echo;
    ThreadsOptions options;
    options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    ThreadsEngine engine(options, echo);
    engine.start();
    Report report;
    report.port = engine.endpoints().front().port();
    for (;;) {
      if (::write(reports, &report, sizeof report) != sizeof report) ::_exit(11);
      char command;
      ssize_t n = ::read(commands, &command, 1);
      if (n < 0 && errno == EINTR) continue;
      // Leave without destructors: a clean shutdown is not what is tested here.
      if (n <= 0) ::_exit(0);
      EngineStats stats = engine.stats();
      report.accepted = stats.accepted;
      report.accept_errors = stats.accept_errors;
      report.fd_exhaustion = stats.fd_exhaustion;
    }
  } catch (...) {
    ::_exit(13);  // set-up failed; never back into gtest
  }
}

bool read_report(int fd, Report& report) {
  std::string bytes = read_exactly(fd, sizeof report, 10s);
  if (bytes.size() != sizeof report) return false;
  std::memcpy(&report, bytes.data(), sizeof report);
  return true;
}

TEST(ThreadsEmfile, ExcessClientsAreClosedWithoutSpinning) {
  int to_child[2], from_child[2];
  ASSERT_EQ(::pipe2(to_child, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(from_child, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << std::strerror(errno);
  if (pid == 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    run_child(to_child[0], from_child[1]);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  Fd commands(to_child[1]);
  Fd reports(from_child[0]);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reaper{pid};

  Report report;
  ASSERT_TRUE(read_report(reports.get(), report)) << "the child server did not start";
  Endpoint server = Endpoint::parse("127.0.0.1:" + std::to_string(report.port));
  Fd early = connect_to(server);
  ASSERT_EQ(round_trip(early.get(), "before"), "before");

  std::vector<Fd> clients;
  for (int i = 0; i < kExtraClients; ++i) {
    clients.push_back(connect_to(server));
    ASSERT_TRUE(clients.back().valid()) << "client " << i << ": " << std::strerror(errno);
  }
  // At two descriptors a client the child serves fewer than kChildFdLimit / 2; every other
  // client must see its connection closed, not hang in the backlog.
  std::vector<bool> closed(clients.size(), false);
  size_t closed_count = 0;
  auto count_closed = [&] {
    for (size_t i = 0; i < clients.size(); ++i) {
      if (closed[i]) continue;
      char b;
      ssize_t n = ::recv(clients[i].get(), &b, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        closed[i] = true;
        ++closed_count;
      }
    }
  };
  auto refresh = [&] {
    return ::write(commands.get(), "s", 1) == 1 && read_report(reports.get(), report);
  };
  EXPECT_TRUE(eventually(
      [&] {
        count_closed();
        return refresh() && report.accepted + closed_count == kExtraClients + 1u;
      },
      10s))
      << report.accepted << " served and " << closed_count << " closed of " << kExtraClients + 1
      << " clients";
  EXPECT_LT(report.accepted, kChildFdLimit / 2);
  EXPECT_GT(report.fd_exhaustion, 0u);
  // Not a spin: a bounded number of failed calls per client shed.
  EXPECT_LE(report.accept_errors, 4u * kExtraClients) << "accept errors " << report.accept_errors;
  // The client served before the limit was hit is still served.
  EXPECT_EQ(round_trip(early.get(), "after"), "after");
}

}  // namespace
}  // namespace keel::test
