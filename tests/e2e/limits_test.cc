// Limits as an operator meets them: chat tells a client it turns away why, refusals are logged
// once a second with a count, and `keel ctl stats` still answers when the server has run out of
// file descriptors (the admin endpoint keeps descriptors of its own in reserve).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/subprocess.h"
#include "test_util.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;
const std::string kWelcome =
    "* welcome to keel chat: /nick NAME, then /join ROOM (/help for more)\n";

Endpoint on_port(int port) {
  return Endpoint::parse("127.0.0.1:" + std::to_string(port));
}

// Connects and reads the welcome line: a member chat has let in.
Fd chat_member(const Endpoint& ep) {
  Fd c = connect_to(ep);
  EXPECT_EQ(read_exactly(c.get(), kWelcome.size(), 5s), kWelcome);
  return c;
}

std::string turned_away(const Endpoint& ep) {
  Fd c = connect_to(ep);
  std::string got;
  EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
  return got;
}

TEST(Limits, ChatTellsTheClientOverThePerIpLimitAndLogsIt) {
  Subprocess chat({kKeel, "chat", "--listen", "127.0.0.1:0", "--max-connections-per-ip", "2",
                   "--admin", "none"});
  auto port = logged_port(chat);
  ASSERT_TRUE(port) << chat.err();
  Fd a = chat_member(on_port(*port));
  Fd b = chat_member(on_port(*port));
  EXPECT_EQ(turned_away(on_port(*port)), "! keel: too many connections from your address\n");
  EXPECT_TRUE(
      chat.wait_for_stderr(R"(chat: refused a connection: over --max-connections-per-ip \(2\))"))
      << chat.err();
  a.reset();  // its slot comes back once the server has seen it go
  ASSERT_TRUE(eventually(
      [&] {
        Fd c = connect_to(on_port(*port));
        return read_exactly(c.get(), kWelcome.size(), 5s) == kWelcome;
      },
      5s));
}

TEST(Limits, ChatTellsTheClientOverMaxConnections) {
  Subprocess chat(
      {kKeel, "chat", "--listen", "127.0.0.1:0", "--max-connections", "1", "--admin", "none"});
  auto port = logged_port(chat);
  ASSERT_TRUE(port) << chat.err();
  Fd a = chat_member(on_port(*port));
  EXPECT_EQ(turned_away(on_port(*port)), "! keel: server full, try again later\n");
  EXPECT_TRUE(chat.wait_for_stderr(R"(chat: refused a connection: over --max-connections \(1\))"))
      << chat.err();
}

TEST(Limits, PerIpWithWorkersIsRefusedWithAReason) {
  Subprocess echo({kKeel, "echo", "--listen", "127.0.0.1:0", "--workers", "2",
                   "--max-connections-per-ip", "3", "--admin", "none"});
  EXPECT_EQ(echo.wait(), 1);
  EXPECT_NE(echo.err().find("--max-connections-per-ip cannot be combined with --workers"),
            std::string::npos)
      << echo.err();
}

// A server limited to 64 descriptors, filled with clients until it has none left to give them:
// keel ctl stats still answers, and shows (and the log says) the descriptor exhaustion.
TEST(Limits, CtlStatsAnswersWhenTheServerIsOutOfDescriptors) {
  const std::string admin = (std::filesystem::temp_directory_path() /
                             ("keel-limits-" + std::to_string(::getpid()) + ".sock"))
                                .string();
  Subprocess echo({"/usr/bin/prlimit", "--nofile=64:64", kKeel, "echo", "--listen", "127.0.0.1:0",
                   "--admin", "unix:" + admin});
  auto port = logged_port(echo);
  ASSERT_TRUE(port) << echo.err();
  std::vector<Fd> clients;
  bool exhausted = false;
  for (int i = 0; i < 100 && !exhausted; ++i) {
    Fd c = connect_to(on_port(*port));
    ASSERT_TRUE(c.valid());
    // A client the server could not keep is closed at once (shed with the reserve fd).
    exhausted = round_trip(c.get(), "x", 2s) != "x";
    clients.push_back(std::move(c));
  }
  ASSERT_TRUE(exhausted) << "the server never ran out of descriptors";

  Subprocess ctl({kKeel, "ctl", "--admin", "unix:" + admin, "--json", "stats"});
  ASSERT_EQ(ctl.wait(), 0) << ctl.err();
  nlohmann::json reply = nlohmann::json::parse(ctl.out(), nullptr, false);
  ASSERT_TRUE(reply.is_object()) << ctl.out();
  ASSERT_EQ(reply["services"].size(), 1u) << ctl.out();
  nlohmann::json row = reply["services"][0];
  EXPECT_GE(row["fd_exhaustion"].get<uint64_t>(), 1u) << ctl.out();
  EXPECT_GE(row["connections"].get<uint64_t>(), 20u) << ctl.out();
  // Twice more, one after the other: the reserve descriptor comes back after each operator.
  for (int i = 0; i < 2; ++i) {
    Subprocess again({kKeel, "ctl", "--admin", "unix:" + admin, "stats"});
    EXPECT_EQ(again.wait(), 0) << again.err();
  }
  EXPECT_TRUE(echo.wait_for_stderr(
      R"(echo: refused (a connection|\d+ connections in the last [0-9.]+ s): out of file descriptors)"))
      << echo.err();
  clients.clear();
  echo.signal(SIGTERM);
  EXPECT_EQ(echo.wait(), 0) << echo.err();
}

}  // namespace
}  // namespace keel::test
