// keel --io: the echo service on an io_uring loop (under the reactor and the processes model),
// the fallback to epoll with the reason in the log where the kernel refuses io_uring (here a
// seccomp filter, as in a container's default profile), and a bad value as a usage error.
#include <errno.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <string>
#include <vector>

#include "e2e/subprocess.h"
#include "keel/net/endpoint.h"
#include "test_util.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

const std::string kKeel = KEEL_BINARY;

// In the child before exec: io_uring_setup fails with EPERM. System calls only (no allocation).
void refuse_io_uring() {
  static sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  static sock_fprog program = {sizeof filter / sizeof filter[0], filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
    ::_exit(125);
}

// Starts keel echo with args, checks one round trip and a clean stop; returns its stderr.
std::string serve_and_echo(std::vector<std::string> args, void (*in_child)() = nullptr) {
  std::vector<std::string> argv = {kKeel, "echo", "--listen", "127.0.0.1:0", "--admin", "none"};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess echo(argv, std::nullopt, in_child);
  auto port = echo.wait_for_stderr(R"(echo listening on 127\.0\.0\.1:(\d+))");
  EXPECT_TRUE(port) << echo.err();
  if (!port) return echo.err();
  for (int i = 0; i < 3; ++i) {  // three clients: under processes, three children
    Fd c = connect_to(Endpoint::parse("127.0.0.1:" + *port));
    EXPECT_TRUE(c.valid());
    std::string line = "line " + std::to_string(i) + " through the ring\n";
    EXPECT_EQ(round_trip(c.get(), line), line);
  }
  echo.signal(SIGTERM);
  EXPECT_EQ(echo.wait(), 0) << echo.err();
  return echo.err();
}

TEST(IoBackend, EchoOnIoUringSaysSo) {
  std::string err = serve_and_echo({"--io", "uring"});
  EXPECT_NE(err.find("event loops wait with io_uring"), std::string::npos) << err;
}

TEST(IoBackend, EchoOnIoUringUnderTheProcessesModel) {
  std::string err = serve_and_echo({"--io", "uring", "--model", "processes"});
  EXPECT_NE(err.find("event loops wait with io_uring"), std::string::npos) << err;
}

TEST(IoBackend, EpollIsTheDefaultAndSaysNothing) {
  std::string err = serve_and_echo({});
  EXPECT_EQ(err.find("io_uring"), std::string::npos) << err;
}

TEST(IoBackend, RefusedIoUringFallsBackToEpollWithTheReason) {
  std::string err = serve_and_echo({"--io", "uring"}, refuse_io_uring);
  EXPECT_NE(err.find("io_uring asked for but io_uring is not permitted here "
                     "(kernel.io_uring_disabled, or a seccomp filter): event loops use epoll"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("event loops wait with io_uring"), std::string::npos) << err;
}

TEST(IoBackend, AnUnknownBackendIsAUsageError) {
  CommandRun r = run_keel({"echo", "--io", "kqueue"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--io"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kqueue"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace keel::test
