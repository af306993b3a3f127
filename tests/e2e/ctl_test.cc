// keel ctl as a subprocess: against an in-process admin server (list, send, broadcast, kick,
// stats, errors, exit codes, TCP token files), and against `keel echo --admin`.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "e2e/subprocess.h"
#include "integration/admin_fixture.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;

class CtlTest : public AdminTest {
 protected:
  // keel ctl --admin <this test's socket> args...
  CommandRun ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"ctl", "--admin", "unix:" + admin_path()});
    return run_keel(std::move(args));
  }
  std::string id_for(const LineClient& client) {
    LineClient admin = connect_admin();
    Json entry = entry_for(admin.request({{"cmd", "list"}}), client);
    return entry.is_object() ? entry["id"].dump() : "none";
  }
};

TEST_F(CtlTest, ListPrintsATable) {
  start_admin();
  LineClient e = connect_service(*echo_engine_);
  LineClient r = connect_service(*rooms_engine_);
  CommandRun run = ctl({"list"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  EXPECT_TRUE(run.out.starts_with("ID ")) << run.out;
  for (const char* column : {"SERVICE", "PEER", "NICK", "ROOM", "SINCE", "IN", "OUT", "QUEUED"})
    EXPECT_NE(run.out.find(column), std::string::npos) << column;
  EXPECT_NE(run.out.find(e.local_address()), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(r.local_address()), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(" u1 "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("#lobby"), std::string::npos) << run.out;
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 3) << run.out;
}

TEST_F(CtlTest, JsonPrintsTheReplyAsItIs) {
  start_admin();
  LineClient e = connect_service(*echo_engine_);
  CommandRun run = ctl({"--json", "list"});
  ASSERT_EQ(run.code, 0) << run.err;
  Json reply = Json::parse(run.out, nullptr, false);
  ASSERT_TRUE(reply.is_object()) << run.out;
  EXPECT_EQ(reply["ok"], true);
  ASSERT_EQ(reply["clients"].size(), 1u);
  EXPECT_EQ(reply["clients"][0]["peer"], e.local_address());
  // Options after the subcommand work too.
  EXPECT_EQ(ctl({"stats", "--json"}).out.substr(0, 10), R"({"ok":true)");
}

TEST_F(CtlTest, SendByIdAndByAddress) {
  start_admin();
  LineClient e = connect_service(*echo_engine_);
  std::string id = id_for(e);
  CommandRun run = ctl({"send", id, "hello", "there"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "sent to " + id + "\n");
  EXPECT_EQ(e.read_line(), "hello there");

  run = ctl({"send", e.local_address(), "by", "address"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(e.read_line(), "by address");
}

TEST_F(CtlTest, BroadcastToAServiceAndARoom) {
  start_admin();
  LineClient e = connect_service(*echo_engine_);
  LineClient r = connect_service(*rooms_engine_);
  CommandRun run = ctl({"broadcast", "--service", "echo", "hi", "all"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "sent to 1 client\n");
  EXPECT_EQ(e.read_line(), "hi all");

  run = ctl({"broadcast", "--room", "#lobby", "lobby", "news"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(r.read_line(), "* operator: lobby news");

  run = ctl({"broadcast", "--room", "#none", "x"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err, "keel ctl: no such room #none\n");
}

TEST_F(CtlTest, KickWithReason) {
  start_admin();
  LineClient r = connect_service(*rooms_engine_);
  std::string id = id_for(r);
  CommandRun run = ctl({"kick", id, "too", "loud"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "kicked " + id + "\n");
  std::string rest;
  EXPECT_EQ(r.read_to_end(&rest), StreamEnd::eof);
  EXPECT_EQ(rest, "* kicked: too loud\n");
}

TEST_F(CtlTest, Stats) {
  start_admin();
  LineClient e = connect_service(*echo_engine_);
  CommandRun run = ctl({"stats"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(run.out.starts_with("uptime ")) << run.out;
  EXPECT_NE(run.out.find("echo     " + echo_engine_->endpoints().front().to_string()),
            std::string::npos)
      << run.out;
}

TEST_F(CtlTest, FailuresAreOneLineAndExitOne) {
  start_admin();
  CommandRun run = ctl({"send", "99999999999", "x"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "keel ctl: no such client 99999999999\n");

  std::string missing = "unix:" + dir_.path() + "/missing.sock";
  run = run_keel({"ctl", "--admin", missing, "list"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err, "keel ctl: connect " + missing +
                         ": No such file or directory (is keel running with --admin?)\n");
}

TEST_F(CtlTest, UsageErrorsExitTwo) {
  start_admin();
  EXPECT_EQ(ctl({"--timeout"}).code, 2);  // (no subcommand is the console: see console_test)
  EXPECT_EQ(ctl({"kick", "abc"}).code, 2);
  EXPECT_EQ(ctl({"send", "17"}).code, 2);  // no text
  EXPECT_EQ(ctl({"reboot"}).code, 2);
  // An unparsable endpoint is a set-up failure, as for every subcommand (docs/operations.md).
  CommandRun bad = run_keel({"ctl", "--admin", "nonsense", "list"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_TRUE(bad.err.starts_with("keel ctl: endpoint 'nonsense'")) << bad.err;
}

TEST_F(CtlTest, TcpEndpointWithTokenFile) {
  AdminOptions options;
  options.endpoint = Endpoint::parse("127.0.0.1:0");
  options.token = "t0ken";
  start_admin(options);
  std::string token_file = dir_.path() + "/token";
  std::ofstream(token_file) << "t0ken\n";
  std::string ep = admin_->endpoint().to_string();

  CommandRun run = run_keel({"ctl", "--admin", ep, "--token-file", token_file, "stats"});
  EXPECT_EQ(run.code, 0) << run.err;
  run = run_keel({"ctl", "--admin", ep, "stats"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err, "keel ctl: unauthorized\n");
}

// The real thing: `keel echo --admin` (wired in src/cli/serve.cc) driven with `keel ctl`.
TEST(CtlAgainstKeel, EchoWithAdminEndpoint) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess server({kKeel, "echo", "--listen", "127.0.0.1:0", "--admin", admin});
  auto port = logged_port(server);
  ASSERT_TRUE(port) << server.err();
  struct stat st {};
  ASSERT_TRUE(eventually([&] { return ::stat((dir.path() + "/admin.sock").c_str(), &st) == 0; }))
      << server.err();
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  LineClient client(connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(*port))));
  ASSERT_TRUE(client.send("hi\n"));
  ASSERT_EQ(client.read_line(), "hi");

  CommandRun list = run_keel({"ctl", "--admin", admin, "--json", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  Json reply = Json::parse(list.out, nullptr, false);
  ASSERT_EQ(reply["clients"].size(), 1u) << list.out;
  EXPECT_EQ(reply["clients"][0]["peer"], client.local_address());
  std::string id = reply["clients"][0]["id"].dump();

  CommandRun send = run_keel({"ctl", "--admin", admin, "send", id, "from", "ops"});
  EXPECT_EQ(send.code, 0) << send.err;
  EXPECT_EQ(client.read_line(), "from ops");

  CommandRun stats = run_keel({"ctl", "--admin", admin, "stats"});
  EXPECT_EQ(stats.code, 0) << stats.err;
  EXPECT_NE(stats.out.find("echo"), std::string::npos) << stats.out;

  CommandRun kick = run_keel({"ctl", "--admin", admin, "kick", id});
  EXPECT_EQ(kick.code, 0) << kick.err;
  EXPECT_EQ(client.read_to_end(nullptr), StreamEnd::eof);
  client = LineClient();  // our side closes too, so the server has nothing left to drain

  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0) << server.err();
}

TEST(CtlAgainstKeel, AdminSocketInUseSaysSo) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess first({kKeel, "echo", "--listen", "127.0.0.1:0", "--admin", admin});
  ASSERT_TRUE(first.wait_for_stderr("admin listening on")) << first.err();
  CommandRun second = run_keel({"echo", "--listen", "127.0.0.1:0", "--admin", admin});
  EXPECT_EQ(second.code, 1);
  EXPECT_EQ(second.err, "keel: admin endpoint: bind " + admin +
                            ": Address already in use (another keel uses that admin endpoint: "
                            "stop it, or choose another --admin or --admin none)\n");
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait(), 0) << first.err();
}

// The issue's operator story: keel chat with an admin socket, keel ctl choosing whom to talk to.
TEST(CtlAgainstKeel, ChatOperatorListsSendsBroadcastsAndKicks) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess server({kKeel, "chat", "--listen", "127.0.0.1:0", "--admin", admin});
  auto port = logged_port(server);
  ASSERT_TRUE(port) << server.err();
  ASSERT_TRUE(server.wait_for_stderr("admin listening on")) << server.err();
  Endpoint chat = Endpoint::parse("127.0.0.1:" + std::to_string(*port));

  auto enter = [&](LineClient& c, const std::string& nick) {
    c.send("/nick " + nick + "\n/join #ops\n");
    for (int i = 0; i < 10; ++i) {
      auto line = c.read_line();
      if (!line) return false;
      if (*line == "* " + nick + " joined #ops") return true;
    }
    return false;
  };
  LineClient alice(connect_to(chat)), bob(connect_to(chat));
  ASSERT_TRUE(enter(alice, "alice"));
  ASSERT_TRUE(enter(bob, "bob"));
  ASSERT_EQ(alice.read_line(), "* bob joined #ops");

  CommandRun list = run_keel({"ctl", "--admin", admin, "--json", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  Json reply = Json::parse(list.out, nullptr, false);
  std::string alice_id;
  for (const auto& c : reply["clients"])
    if (c.value("nick", "") == "alice") {
      EXPECT_EQ(c.value("room", ""), "#ops");
      alice_id = c["id"].dump();
    }
  ASSERT_FALSE(alice_id.empty()) << list.out;
  CommandRun table = run_keel({"ctl", "--admin", admin, "list"});
  EXPECT_NE(table.out.find("alice"), std::string::npos) << table.out;

  // To alice only.
  EXPECT_EQ(run_keel({"ctl", "--admin", admin, "send", alice_id, "hello", "alice"}).code, 0);
  EXPECT_EQ(alice.read_line(), "* [operator] hello alice");
  // To the room.
  EXPECT_EQ(run_keel({"ctl", "--admin", admin, "broadcast", "--room", "#ops", "all", "hands"}).code,
            0);
  EXPECT_EQ(alice.read_line(), "* [operator] all hands");
  EXPECT_EQ(bob.read_line(), "* [operator] all hands") << "bob must not have seen alice's message";

  // Kick alice: she gets the reason, then the end; the room is told.
  EXPECT_EQ(run_keel({"ctl", "--admin", admin, "kick", alice_id, "spam"}).code, 0);
  EXPECT_EQ(alice.read_line(), "* you were kicked by the operator: spam");
  EXPECT_EQ(alice.read_to_end(nullptr), StreamEnd::eof);
  alice = LineClient();
  auto left = bob.read_line();
  ASSERT_TRUE(left);
  EXPECT_TRUE(left->starts_with("* alice left #ops")) << *left;

  CommandRun stale = run_keel({"ctl", "--admin", admin, "send", alice_id, "anyone?"});
  EXPECT_EQ(stale.code, 1);
  EXPECT_NE(stale.err.find("no such client"), std::string::npos) << stale.err;

  bob = LineClient();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0) << server.err();
}

}  // namespace
}  // namespace keel::test
