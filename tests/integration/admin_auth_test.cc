// Who may use the admin endpoint: the Unix socket is 0600 and checks the peer's uid; TCP is
// loopback-only and needs the token on every request.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "admin_fixture.h"
#include "keel/error.h"

namespace keel::test {
namespace {

TEST_F(AdminTest, UnixSocketIsOwnerOnly) {
  start_admin();
  struct stat st {};
  ASSERT_EQ(::stat(admin_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Even if the socket file were reachable, a process of another user is refused (SO_PEERCRED).
TEST_F(AdminTest, UnixClientOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  start_admin();
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(admin_path().c_str(), 0666), 0);
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  Endpoint ep = admin_->endpoint();
  pid_t pid = ::fork();
  if (pid == 0) {  // only system calls from here on: the parent has threads
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::connect(fd, ep.sockaddr_ptr(), ep.sockaddr_len()) != 0) ::_exit(3);
    static const char kRequest[] = "{\"cmd\":\"list\"}\n";
    [[maybe_unused]] ssize_t w = ::write(fd, kRequest, sizeof kRequest - 1);
    char buf[256];
    size_t got = 0;
    pollfd p{fd, POLLIN, 0};
    while (got < sizeof buf && ::poll(&p, 1, 10000) == 1) {
      ssize_t n = ::read(fd, buf + got, sizeof buf - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    w = ::write(out[1], buf, got);
    ::_exit(0);
  }
  ::close(out[1]);
  Fd from_child(out[0]);
  std::string reply;
  EXPECT_EQ(read_until_end(from_child.get(), &reply), StreamEnd::eof);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(reply, "{\"ok\":false,\"error\":\"unauthorized\"}\n");
}

TEST_F(AdminTest, TcpNeedsTheTokenOnEveryRequest) {
  AdminOptions options;
  options.endpoint = Endpoint::parse("127.0.0.1:0");
  options.token = "s3cret";
  start_admin(options);
  ASSERT_NE(admin_->endpoint().port(), 0);

  for (const char* line :
       {R"({"cmd":"stats"})", R"({"cmd":"stats","token":"s3cre"})",
        R"({"cmd":"stats","token":"s3cret!"})", R"({"cmd":"stats","token":1})", "not json"}) {
    LineClient admin = connect_admin();
    EXPECT_EQ(admin.request_line(std::string(line) + "\n")["error"], "unauthorized") << line;
    std::string rest;
    EXPECT_EQ(admin.read_to_end(&rest), StreamEnd::eof) << line;
  }
  LineClient admin = connect_admin();
  EXPECT_EQ(admin.request({{"cmd", "stats"}, {"token", "s3cret"}})["ok"], true);
  EXPECT_EQ(admin.request({{"cmd", "list"}, {"token", "s3cret"}})["ok"], true);
  EXPECT_EQ(admin.request({{"cmd", "list"}})["error"], "unauthorized");
}

TEST_F(AdminTest, TcpChecksTheTokenBeforeParsingTheRequest) {
  AdminOptions options;
  options.endpoint = Endpoint::parse("127.0.0.1:0");
  options.token = "s3cret";
  start_admin(options);
  // The token is read first; only then is the request parsed, so a client holding the token is
  // told what is wrong with the rest, and one without it is told nothing more.
  LineClient admin = connect_admin();
  EXPECT_EQ(admin.request_line("{\"token\":\"s3cret\",\"cmd\":nope}\n")["error"], "malformed JSON");
  EXPECT_EQ(admin.request_line("{\"token\":\"s3cret\",\"cmd\":\"stats\"}\n")["ok"], true);
  LineClient other = connect_admin();
  EXPECT_EQ(other.request_line("{\"token\":\"wrong\",\"cmd\":nope}\n")["error"], "unauthorized");
}

TEST_F(AdminTest, TcpWithoutTokenOrOffLoopbackIsRefused) {
  AdminOptions options;
  options.endpoint = Endpoint::parse("127.0.0.1:0");
  try {
    start_admin(options);
    FAIL() << "started on TCP without a token";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a token"), std::string::npos) << e.what();
  }
  options.endpoint = Endpoint::parse("0.0.0.0:0");
  options.token = "t";
  try {
    start_admin(options);
    FAIL() << "started on a non-loopback address";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a loopback address"), std::string::npos) << e.what();
  }
}

// A second keel on the same admin socket: the error says it is the admin endpoint's bind.
TEST_F(AdminTest, SocketInUseIsAnAdminError) {
  start_admin();
  AdminServer second(unix_options(), {echo_engine_.get()});
  try {
    second.start();
    FAIL() << "two admin servers on one socket";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "admin endpoint: bind unix:" + admin_path() + ": Address already in use");
    EXPECT_EQ(e.errno_value(), EADDRINUSE);
  }
  // The first one still answers.
  LineClient admin = connect_admin();
  EXPECT_EQ(admin.request({{"cmd", "stats"}})["ok"], true);
}

}  // namespace
}  // namespace keel::test
