// The timeouts as an operator uses them: `keel echo --idle-timeout 2` closes a silent client
// after 2-3 s while a client that talks every 500 ms stays, and `keel ctl stats` counts the
// close under its own reason; bad --keepalive values are refused with a clear message.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "e2e/subprocess.h"
#include "test_util.h"

namespace keel::test {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
const std::string kKeel = KEEL_BINARY;

TEST(Timeouts, EchoIdleTimeoutClosesTheSilentClientAndKeepsTheTalker) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess echo({kKeel, "echo", "--listen", "127.0.0.1:0", "--idle-timeout", "2", "--keepalive",
                   "30,5,3", "--admin", admin});
  auto port = logged_port(echo);
  ASSERT_TRUE(port) << echo.err();
  const Endpoint ep = Endpoint::parse("127.0.0.1:" + std::to_string(*port));
  const Clock::time_point start = Clock::now();
  Fd silent = connect_to(ep);
  Fd talker = connect_to(ep);
  ASSERT_TRUE(silent.valid() && talker.valid());

  std::optional<Clock::time_point> silent_closed;
  while (Clock::now() - start < 4500ms) {
    ASSERT_EQ(round_trip(talker.get(), "ping\n"), "ping\n") << echo.err();
    if (!silent_closed && wait_ready(silent.get(), POLLIN, 500ms)) {
      char c;
      ASSERT_EQ(::recv(silent.get(), &c, 1, 0), 0) << "the silent client got bytes, not EOF";
      silent_closed = Clock::now();
    } else if (silent_closed) {
      std::this_thread::sleep_for(500ms);  // the talker's pace
    }
  }
  ASSERT_TRUE(silent_closed) << "the silent client was still open after 4.5 s";
  auto after = *silent_closed - start;
  EXPECT_GE(after, 2s);
  EXPECT_LE(after, 3s);

  CommandRun stats = run_keel({"ctl", "--admin", admin, "--json", "stats"});
  ASSERT_EQ(stats.code, 0) << stats.err;
  Json reply = Json::parse(stats.out, nullptr, false);
  ASSERT_FALSE(reply.is_discarded()) << stats.out;
  EXPECT_EQ(reply["services"][0]["closed"]["idle_timeout"], 1) << stats.out;
  EXPECT_EQ(reply["services"][0]["connections"], 1) << stats.out;
  CommandRun text = run_keel({"ctl", "--admin", admin, "stats"});
  EXPECT_NE(text.out.find("idle_timeout 1"), std::string::npos) << text.out;

  EXPECT_TRUE(echo.wait_for_stderr("echo: 1 connection closed in the last second: idle timeout"))
      << echo.err();

  talker.reset();
  echo.signal(SIGTERM);
  EXPECT_EQ(echo.wait(), 0) << echo.err();
}

TEST(Timeouts, BadKeepaliveIsRefusedWithWhatIsWrong) {
  CommandRun r = run_keel({"echo", "--listen", "127.0.0.1:0", "--keepalive", "30,5"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("IDLE,INTERVAL,COUNT"), std::string::npos) << r.err;
  r = run_keel({"echo", "--listen", "127.0.0.1:0", "--keepalive", "30,0,3"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("positive"), std::string::npos) << r.err;
  r = run_keel({"echo", "--listen", "127.0.0.1:0", "--idle-timeout", "-1"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--idle-timeout"), std::string::npos) << r.err;
  r = run_keel({"echo", "--listen", "127.0.0.1:0", "--idle-timeout", "nan"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("not a finite number"), std::string::npos) << r.err;
  r = run_keel({"echo", "--listen", "127.0.0.1:0", "--drain-timeout", "nan"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("not a finite number"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace keel::test
