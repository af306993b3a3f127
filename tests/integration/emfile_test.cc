// Running out of file descriptors must not make the acceptor spin: excess clients are closed,
// existing ones keep working, and the number of failed accept calls stays small.
// The server runs in a forked child with a low RLIMIT_NOFILE so the limit does not touch the
// test process.
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

#include "keel/engine/reactor.h"
#include "keel/net/loop_pool.h"
#include "services/echo/echo_service.h"
#include "test_util.h"

namespace keel::test {
namespace {

constexpr rlim_t kChildFdLimit = 64;
constexpr int kExtraClients = 150;

struct ChildReport {
  int port = 0;
  uint64_t accepted = 0;
  uint64_t accept_errors = 0;
  uint64_t fd_exhaustion = 0;
  uint64_t active = 0;
  double cpu_seconds = 0;
};

bool write_full(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads one ChildReport from fd, waiting at most timeout.
bool read_report(int fd, ChildReport& report, std::chrono::milliseconds timeout) {
  std::string bytes = read_exactly(fd, sizeof report, timeout);
  if (bytes.size() != sizeof report) return false;
  std::memcpy(&report, bytes.data(), sizeof report);
  return true;
}

// The child: an echo server with few descriptors. Each byte on commands asks for a report;
// 'q' asks for a last one and ends the process. Never returns.
[[noreturn]] void run_child(int commands, int reports) {
  try {
    rlimit limit{kChildFdLimit, kChildFdLimit};
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::_exit(10);
    LoopPool pool(1);
    EchoService echo;
    ServerOptions options;
    options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    ReactorEngine engine(pool, options, echo);
    engine.start();
    pool.start();
    ChildReport report;
    report.port = engine.endpoints().front().port();
    if (!write_full(reports, &report, sizeof report)) ::_exit(11);
    for (;;) {
      char command = 0;
      ssize_t n = ::read(commands, &command, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(14);  // the parent went away
      ServerStats stats = engine.server().stats();
      report.accepted = stats.accepted;
      report.accept_errors = stats.accept_errors;
      report.fd_exhaustion = stats.fd_exhaustion;
      report.active = stats.active;
      rusage usage{};
      ::getrusage(RUSAGE_SELF, &usage);
      report.cpu_seconds =
          static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
          static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
      if (!write_full(reports, &report, sizeof report)) ::_exit(12);
      // Leave without running destructors: a clean shutdown is not what is tested here, and
      // sanitizer runtimes misreport when they cannot open a descriptor.
      if (command == 'q') ::_exit(0);
    }
  } catch (...) {
    ::_exit(13);  // set-up failed (keel::Error); never back into gtest
  }
}

// Kills and reaps the child unless it was reaped already.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  // Waits up to timeout for a normal exit; returns the wait status or -1.
  int wait_exit(std::chrono::milliseconds timeout) {
    int status = -1;
    bool done = eventually(
        [&] {
          pid_t r = ::waitpid(pid_, &status, WNOHANG);
          return r == pid_ || (r < 0 && errno != EINTR);
        },
        timeout);
    if (done) pid_ = -1;
    return done ? status : -1;
  }

 private:
  pid_t pid_;
};

TEST(Emfile, AcceptorShedsExcessClientsWithoutSpinning) {
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
  ChildGuard guard(pid);
  ::close(to_child[0]);
  ::close(from_child[1]);
  Fd commands(to_child[1]);
  Fd reports(from_child[0]);

  ChildReport report;
  ASSERT_TRUE(read_report(reports.get(), report, 10s)) << "the child server did not start";
  ASSERT_GT(report.port, 0);
  Endpoint server = Endpoint::parse("127.0.0.1:" + std::to_string(report.port));

  // One client connected before the descriptors run out.
  Fd early = connect_to(server);
  ASSERT_TRUE(early.valid()) << std::strerror(errno);
  ASSERT_EQ(round_trip(early.get(), "before"), "before");

  // Far more clients than the child has descriptors.
  std::vector<Fd> clients;
  for (int i = 0; i < kExtraClients; ++i) {
    clients.push_back(connect_to(server));
    ASSERT_TRUE(clients.back().valid()) << "client " << i << ": " << std::strerror(errno);
  }

  // The child can hold at most kChildFdLimit descriptors, and it needs some for itself (stdio,
  // epoll, eventfd, timerfd, listener, reserve): everyone over that must be closed, not left
  // hanging in the backlog.
  const size_t must_close = kExtraClients + 1 - (kChildFdLimit - 8);
  std::vector<bool> closed(clients.size(), false);
  size_t closed_count = 0;
  auto poll_closed = [&] {
    std::vector<pollfd> fds;
    for (auto& c : clients) fds.push_back({c.get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 50) <= 0) return;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (closed[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char b;
      ssize_t n = ::recv(clients[i].get(), &b, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        closed[i] = true;
        ++closed_count;
      }
    }
  };
  EXPECT_TRUE(eventually(
      [&] {
        poll_closed();
        return closed_count >= must_close;
      },
      10s))
      << closed_count << " of at least " << must_close << " excess clients were closed";

  ASSERT_TRUE(::write(commands.get(), "s", 1) == 1);
  ASSERT_TRUE(read_report(reports.get(), report, 5s));
  // Every client the server did not keep is closed (accepted counts the early one).
  ASSERT_LE(report.accepted, kChildFdLimit);
  const size_t shed = kExtraClients + 1 - report.accepted;
  EXPECT_TRUE(eventually(
      [&] {
        poll_closed();
        return closed_count >= shed;
      },
      5s))
      << closed_count << " of " << shed << " shed clients saw a close";
  EXPECT_EQ(closed_count, shed);

  // The early client still works, and so do the accepted extra ones.
  EXPECT_EQ(round_trip(early.get(), "after"), "after");
  for (size_t i = 0; i < clients.size(); ++i)
    if (!closed[i]) {
      EXPECT_EQ(round_trip(clients[i].get(), "kept"), "kept") << "client " << i;
    }

  ASSERT_TRUE(::write(commands.get(), "q", 1) == 1);
  ASSERT_TRUE(read_report(reports.get(), report, 5s));
  int status = guard.wait_exit(5s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;

  RecordProperty("child_cpu_seconds", std::to_string(report.cpu_seconds));
  RecordProperty("child_accept_errors", std::to_string(report.accept_errors));
  EXPECT_GE(report.fd_exhaustion, 1u) << "the child never ran out of descriptors";
  // Shedding costs about one failed accept per excess client; a spinning acceptor makes millions.
  EXPECT_LT(report.accept_errors, 10000u);
}

}  // namespace
}  // namespace keel::test
