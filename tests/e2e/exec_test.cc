// keel exec as a subprocess: a process per connection running a fixed program on the socket.
// Byte-exact echo through /bin/cat with half-close, the tcpserver/unixserver environment,
// arguments passed without a shell, --max-connections deferring accepts, no zombies, a crashing
// child hurting only its own client, --timeout, --stderr and the SIGTERM drain.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e/subprocess.h"
#include "proc_util.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

const std::string kKeel = KEEL_BINARY;

// keel exec on 127.0.0.1:0 with options, then -- program...; waits for its port.
struct ExecServer {
  ExecServer(std::vector<std::string> options, std::vector<std::string> program)
      : process(args(std::move(options), std::move(program))) {
    if (auto p = logged_port(process))
      endpoint = Endpoint::parse("127.0.0.1:" + std::to_string(*p));
  }
  static std::vector<std::string> args(std::vector<std::string> options,
                                       std::vector<std::string> program) {
    std::vector<std::string> a = {kKeel, "exec", "--admin", "none"};
    bool has_listen = false;
    for (auto& o : options) has_listen |= o == "--listen";
    if (!has_listen) a.insert(a.end(), {"--listen", "127.0.0.1:0"});
    a.insert(a.end(), options.begin(), options.end());
    a.push_back("--");
    a.insert(a.end(), program.begin(), program.end());
    return a;
  }
  bool ready() const { return endpoint.port() != 0; }
  Fd connect() const { return connect_to(endpoint); }

  Subprocess process;
  Endpoint endpoint;
};

// Reads one line (up to and including '\n'), polling with a bound.
std::string read_line(int fd, std::chrono::milliseconds timeout = 5s) {
  std::string line;
  while (line.empty() || line.back() != '\n') {
    std::string c = read_exactly(fd, 1, timeout);
    if (c.empty()) break;
    line += c;
  }
  return line;
}

TEST(Exec, CatEchoesOneMebibyteExactlyAfterHalfClose) {
  ExecServer server({}, {"/bin/cat"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd c = server.connect();
  ASSERT_TRUE(c.valid());
  const std::string data = pattern_bytes(1 << 20, 7);
  std::atomic<bool> wrote{false}, done{false};
  std::jthread writer([&] {
    wrote = write_all(c.get(), data, 20s);
    ::shutdown(c.get(), SHUT_WR);
    done = true;
  });
  // A late reader: start reading only once everything is written and the FIN is out (the
  // socket buffers of loopback hold 1 MiB each way). If they did not, waiting longer would
  // deadlock, so after 5 s read anyway; the bytes and the EOF are checked either way.
  eventually([&] { return done.load(); }, 5s);
  std::string got;
  StreamEnd end = read_until_end(c.get(), &got, 20s);
  writer.join();
  EXPECT_TRUE(wrote.load());
  EXPECT_EQ(end, StreamEnd::eof) << to_string(end);
  EXPECT_TRUE(got == data) << "got " << got.size() << " of " << data.size() << " bytes";
}

TEST(Exec, ProgramSeesTcpserverEnvironment) {
  ExecServer server(
      {}, {"/bin/sh", "-c", "echo $PROTO $TCPREMOTEIP $TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd c = server.connect();
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ASSERT_EQ(::getsockname(c.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
  Endpoint local = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(got, "TCP 127.0.0.1 " + std::to_string(local.port()) + " 127.0.0.1 " +
                     std::to_string(server.endpoint.port()) + "\n");
}

TEST(Exec, RemoteIpAlone) {
  ExecServer server({}, {"/bin/sh", "-c", "echo $TCPREMOTEIP"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd c = server.connect();
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(got, "127.0.0.1\n");
}

// No shell between keel and the program: spaces and $ reach it as given.
TEST(Exec, ArgumentsReachTheProgramVerbatim) {
  ExecServer server({}, {"/bin/echo", "a  b", "$HOME", "*"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd c = server.connect();
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(got, "a  b $HOME *\n");
}

TEST(Exec, UnixSocketIsOwnerOnlyAndPassesPeerCredentials) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir.path() + "/exec.sock";
  Subprocess server(ExecServer::args(
      {"--listen", "unix:" + path},
      {"/bin/sh", "-c", "echo $PROTO $UNIXREMOTEEUID $UNIXREMOTEEGID $UNIXREMOTEPID"}));
  ASSERT_TRUE(server.wait_for_stderr("listening on unix:")) << server.err();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Fd c = connect_to(Endpoint::parse("unix:" + path));
  ASSERT_TRUE(c.valid());
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(got, "UNIX " + std::to_string(::geteuid()) + " " + std::to_string(::getegid()) + " " +
                     std::to_string(::getpid()) + "\n");
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0);
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "socket file left behind";
}

TEST(Exec, MaxConnectionsDefersTheThirdClientUntilOneLeaves) {
  ExecServer server({"--max-connections", "2"}, {"/bin/sh", "-c", "echo banner; exec cat"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd a = server.connect(), b = server.connect();
  ASSERT_EQ(read_line(a.get()), "banner\n");
  ASSERT_EQ(read_line(b.get()), "banner\n");
  Fd third = server.connect();  // completes in the kernel's backlog, but nobody accepts it
  ASSERT_TRUE(third.valid());
  ASSERT_TRUE(write_all(third.get(), "early\n"));
  // Proving an absence needs a bounded wait: no program runs for it, so no banner comes.
  EXPECT_FALSE(wait_ready(third.get(), POLLIN, 500ms)) << "third client was served at the cap";
  EXPECT_EQ(round_trip(a.get(), "a still works\n"), "a still works\n");
  a.reset();  // cat sees EOF and exits: a slot frees up
  EXPECT_EQ(read_line(third.get()), "banner\n");
  EXPECT_EQ(read_line(third.get()), "early\n");  // what it sent while waiting was kept
  EXPECT_EQ(round_trip(b.get(), "b too\n"), "b too\n");
}

TEST(Exec, FiveHundredShortConnectionsLeaveNoZombie) {
  ExecServer server({"--max-connections", "16"}, {"/bin/echo", "hi"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  constexpr int kThreads = 4, kPerThread = 125;
  std::atomic<int> ok{0};
  {
    std::vector<std::jthread> clients;
    for (int t = 0; t < kThreads; ++t)
      clients.emplace_back([&] {
        for (int i = 0; i < kPerThread; ++i) {
          Fd c = server.connect();
          std::string got;
          if (c.valid() && read_until_end(c.get(), &got, 10s) == StreamEnd::eof && got == "hi\n")
            ++ok;
        }
      });
  }
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  pid_t pid = server.process.pid();
  EXPECT_TRUE(eventually([&] { return connection_processes(pid).empty(); }, 10s))
      << "children left: " << describe(connection_processes(pid));
}

TEST(Exec, CrashingChildClosesOnlyItsOwnClient) {
  ExecServer server({}, {"/bin/sh", "-c",
                         "read line; [ \"$line\" = crash ] && kill -SEGV $$; echo \"got $line\"; "
                         "exec cat"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd good = server.connect(), bad = server.connect();
  ASSERT_TRUE(write_all(good.get(), "hello\n"));
  EXPECT_EQ(read_line(good.get()), "got hello\n");
  ASSERT_TRUE(write_all(bad.get(), "crash\n"));
  std::string got;
  StreamEnd end = read_until_end(bad.get(), &got, 5s);
  EXPECT_TRUE(end == StreamEnd::eof || end == StreamEnd::reset) << to_string(end);
  EXPECT_EQ(got, "");
  EXPECT_TRUE(server.process.wait_for_stderr("killed by signal 11")) << server.process.err();
  EXPECT_EQ(round_trip(good.get(), "still echoing\n"), "still echoing\n");
  Fd later = server.connect();  // and the server still takes new clients
  ASSERT_TRUE(write_all(later.get(), "x\n"));
  EXPECT_EQ(read_line(later.get()), "got x\n");
}

TEST(Exec, TimeoutKillsTheChildOfASilentClient) {
  ExecServer server({"--timeout", "0.5"}, {"/bin/cat"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd silent = server.connect(), talker = server.connect();
  // The talker moves a byte every 100 ms, well inside the timeout, and keeps its program.
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(round_trip(talker.get(), "."), ".") << "round " << i;
    std::this_thread::sleep_for(100ms);  // pacing the client, not waiting for a condition
  }
  std::string got;
  EXPECT_EQ(read_until_end(silent.get(), &got, 5s), StreamEnd::eof);
  EXPECT_TRUE(server.process.wait_for_stderr("killed by signal 9 .*idle timeout"))
      << server.process.err();
  EXPECT_EQ(round_trip(talker.get(), "alive"), "alive");
}

TEST(Exec, StderrIsLoggedWithTheConnectionIdOrSentToTheClient) {
  ExecServer logged({}, {"/bin/sh", "-c", "echo oops >&2; echo out"});
  ASSERT_TRUE(logged.ready()) << logged.process.err();
  Fd c = logged.connect();
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(got, "out\n");
  EXPECT_TRUE(logged.process.wait_for_stderr(R"(info conn \d+: oops)")) << logged.process.err();

  ExecServer to_client({"--stderr", "client"}, {"/bin/sh", "-c", "echo oops >&2"});
  ASSERT_TRUE(to_client.ready()) << to_client.process.err();
  Fd d = to_client.connect();
  got.clear();
  EXPECT_EQ(read_until_end(d.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(got, "oops\n");
}

TEST(Exec, SigtermLetsProgramsFinishThenExitsZero) {
  ExecServer server({}, {"/bin/sh", "-c",
                         "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd c = server.connect();
  ASSERT_EQ(read_line(c.get()), "ready\n");
  server.process.signal(SIGTERM);
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(got, "bye\n");
  EXPECT_EQ(server.process.wait(), 0);
  EXPECT_NE(server.process.err().find("info stopped"), std::string::npos) << server.process.err();
}

TEST(Exec, DrainTimeoutKillsAProgramThatIgnoresSigterm) {
  ExecServer server({"--drain-timeout", "0.3"},
                    {"/bin/sh", "-c", "trap '' TERM; echo ready; exec sleep 60"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd c = server.connect();
  ASSERT_EQ(read_line(c.get()), "ready\n");
  server.process.signal(SIGTERM);
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_EQ(server.process.wait(), 0);
  EXPECT_NE(server.process.err().find("1 child process did not exit in time"), std::string::npos)
      << server.process.err();
}

TEST(Exec, AdminListsProgramsAndKickEndsOne) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess server({kKeel, "exec", "--listen", "127.0.0.1:0", "--admin", admin, "--", "/bin/cat"});
  auto port = logged_port(server);
  ASSERT_TRUE(port) << server.err();
  Fd c = connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(*port)));
  ASSERT_EQ(round_trip(c.get(), "hi"), "hi");  // its program runs
  Subprocess list({kKeel, "ctl", "--admin", admin, "list"});
  ASSERT_EQ(list.wait(), 0) << list.err();
  EXPECT_NE(list.out().find("exec"), std::string::npos) << list.out();
  Subprocess kick({kKeel, "ctl", "--admin", admin, "kick", "1"});
  ASSERT_EQ(kick.wait(), 0) << kick.err();
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_TRUE(server.wait_for_stderr("killed by signal 15 .*: kicked by operator")) << server.err();
}

TEST(Exec, MissingProgramIsLoggedAndTheServerCarriesOn) {
  ExecServer server({}, {"/nonexistent/program"});
  ASSERT_TRUE(server.ready()) << server.process.err();
  Fd c = server.connect();
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  EXPECT_TRUE(server.process.wait_for_stderr("/nonexistent/program: No such file or directory"))
      << server.process.err();
  EXPECT_TRUE(server.process.wait_for_stderr("exited with status 127")) << server.process.err();
}

}  // namespace
}  // namespace keel::test
