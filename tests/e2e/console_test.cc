// keel ctl's operator console as an operator uses it: in a terminal (tmux: send-keys, then
// capture-pane) against an in-process keel with an echo service and a chat-like "rooms" service
// (nicks u1, u2, ...); and fed from a pipe.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "e2e/subprocess.h"
#include "e2e/tmux.h"
#include "integration/admin_fixture.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class ConsoleTest : public AdminTest {
 protected:
  std::string id_for(const LineClient& client) {
    LineClient admin = connect_admin();
    Json entry = entry_for(admin.request({{"cmd", "list"}}), client);
    return entry.is_object() ? entry["id"].dump() : "none";
  }
  // The console in tmux, with its history in this test's directory; the pane stays after the
  // console exits and shows its status.
  std::string console_command() const {
    return "env HOME=" + dir_.path() + " XDG_STATE_HOME= " + kKeel +
           " ctl --admin unix:" + admin_path() + "; echo \"console exited $?\"; sleep 60";
  }
  CommandRun piped(const std::string& input) {
    return run_command({kKeel, "ctl", "--admin", "unix:" + admin_path()}, input);
  }
};

TEST_F(ConsoleTest, InATerminal) {
  start_admin();
  LineClient e1 = connect_service(*echo_engine_);
  LineClient e2 = connect_service(*echo_engine_);
  LineClient r1 = connect_service(*rooms_engine_);  // nick u1
  const std::string e1_id = id_for(e1), e2_id = id_for(e2);
  Tmux tmux(console_command());
  ASSERT_TRUE(tmux.started());
  std::string screen;
  ASSERT_TRUE(tmux.wait_text("keel>", &screen)) << screen;

  // list shows every client, with the nick.
  tmux.literal("list");
  tmux.keys({"Enter"});
  ASSERT_TRUE(tmux.wait_screen(
      [&](const std::string& s) {
        return s.find(e1.local_address()) != std::string::npos &&
               s.find(e2.local_address()) != std::string::npos &&
               s.find(r1.local_address()) != std::string::npos &&
               s.find(" u1 ") != std::string::npos;
      },
      &screen))
      << screen;

  // Tab completes the nick; the console sends to the client that has it.
  tmux.literal("send u");
  tmux.keys({"Tab"});
  ASSERT_TRUE(tmux.wait_text("keel> send u1", &screen)) << screen;  // and a blank
  tmux.literal("hello from the console");
  tmux.keys({"Enter"});
  EXPECT_EQ(r1.read_line(), "* operator: hello from the console");

  // Up recalls the last command; Enter runs it again.
  tmux.keys({"Up"});
  ASSERT_TRUE(tmux.wait_screen(
      [](const std::string& s) { return count_of(s, "keel> send u1 hello from the console") == 2; },
      &screen))
      << screen;
  tmux.keys({"Enter"});
  EXPECT_EQ(r1.read_line(), "* operator: hello from the console");

  // Ctrl-C drops the line being typed; the console carries on.
  tmux.literal("garbage that is never run");
  tmux.keys({"C-c"});
  ASSERT_TRUE(tmux.wait_text("^C", &screen)) << screen;

  // An error does not end the console.
  tmux.literal("kick 12345");
  tmux.keys({"Enter"});
  ASSERT_TRUE(tmux.wait_text("keel ctl: no such client", &screen)) << screen;

  // kick disconnects the right client.
  tmux.literal("kick " + e2_id + " enough");
  tmux.keys({"Enter"});
  ASSERT_TRUE(tmux.wait_text("kicked " + e2_id, &screen)) << screen;
  std::string rest;
  EXPECT_EQ(e2.read_to_end(&rest), StreamEnd::eof);
  ASSERT_TRUE(e1.send("still here\n"));
  EXPECT_EQ(e1.read_line(), "still here");

  // watch shows both directions live, then Ctrl-C returns to the prompt.
  tmux.literal("watch " + e1_id);
  tmux.keys({"Enter"});
  ASSERT_TRUE(tmux.wait_text("watching " + e1_id, &screen)) << screen;
  ASSERT_TRUE(eventually([&] {
    e1.send("ping\n");
    e1.read_line();
    return tmux.screen().find("> ping") != std::string::npos;
  })) << tmux.screen();
  screen = tmux.screen();
  EXPECT_NE(screen.find(" < ping"), std::string::npos) << screen;
  EXPECT_LT(screen.find(" < ping"), screen.find(" > ping")) << screen;
  tmux.keys({"C-c"});
  ASSERT_TRUE(tmux.wait_text("stopped watching", &screen)) << screen;
  tmux.literal("stats");
  tmux.keys({"Enter"});
  ASSERT_TRUE(tmux.wait_text("uptime ", &screen)) << screen;

  // Ctrl-D leaves; the history is kept (bounded) in ~/.keel_history.
  tmux.keys({"C-d"});
  ASSERT_TRUE(tmux.wait_text("console exited 0", &screen)) << screen;
  std::ifstream history(dir_.path() + "/.keel_history");
  std::stringstream text;
  text << history.rdbuf();
  // (libedit's format: blanks as \040.)
  EXPECT_NE(text.str().find("send\\040u1\\040hello\\040from\\040the\\040console"),
            std::string::npos)
      << text.str();
}

TEST_F(ConsoleTest, WatchEndsWhenTheClientCloses) {
  start_admin();
  auto e1 = std::make_unique<LineClient>(connect_service(*echo_engine_));
  const std::string id = id_for(*e1);
  Tmux tmux(console_command());
  ASSERT_TRUE(tmux.started());
  std::string screen;
  ASSERT_TRUE(tmux.wait_text("keel>", &screen)) << screen;
  tmux.literal("watch " + id);
  tmux.keys({"Enter"});
  ASSERT_TRUE(tmux.wait_text("watching " + id, &screen)) << screen;
  e1.reset();
  ASSERT_TRUE(tmux.wait_text("= client closed: ", &screen)) << screen;
  ASSERT_TRUE(
      tmux.wait_screen([](const std::string& s) { return count_of(s, "keel>") == 2; }, &screen))
      << screen;
}

TEST_F(ConsoleTest, FromAPipe) {
  start_admin();
  LineClient e1 = connect_service(*echo_engine_);
  LineClient r1 = connect_service(*rooms_engine_);
  CommandRun run = piped("list\n# a comment\n\nstats\nsend u1 piped  text\n");
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  EXPECT_TRUE(run.out.starts_with("ID ")) << run.out;
  EXPECT_NE(run.out.find(e1.local_address()), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("uptime "), std::string::npos) << run.out;
  EXPECT_EQ(r1.read_line(), "* operator: piped  text");
  // No prompt, and the same output as the one-shot commands.
  EXPECT_EQ(run.out.find("keel>"), std::string::npos) << run.out;
  CommandRun once = run_command({kKeel, "ctl", "--admin", "unix:" + admin_path(), "list"});
  CommandRun list = piped("list\n");
  EXPECT_EQ(list.out, once.out);
}

TEST_F(ConsoleTest, FromAPipeAFailedCommandSetsTheStatusAndTheRestRuns) {
  start_admin();
  LineClient r1 = connect_service(*rooms_engine_);
  CommandRun run = piped("kick 99999\nfrobnicate\nsend u1 after the errors\nquit\nsend u1 never\n");
  EXPECT_EQ(run.code, 1) << run.err;  // the first failure: no such client
  EXPECT_NE(run.err.find("keel ctl: no such client"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("keel ctl: unknown command 'frobnicate'"), std::string::npos) << run.err;
  EXPECT_EQ(r1.read_line(), "* operator: after the errors");
  EXPECT_FALSE(r1.read_line(std::chrono::milliseconds(300)).has_value());  // quit stopped it
  EXPECT_EQ(piped("send\n").code, 2);
}

// Under --model processes a client lives in a child process: watch says it cannot, clearly.
TEST(CtlWatch, ProcessesModelAnswersAClearError) {
  TempDir dir;
  const std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess server(
      {kKeel, "echo", "--listen", "127.0.0.1:0", "--model", "processes", "--admin", admin});
  std::optional<int> port = logged_port(server);
  ASSERT_TRUE(port) << server.err();
  Fd client = connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(*port)));
  ASSERT_TRUE(client.valid());
  std::string id;
  ASSERT_TRUE(eventually([&] {
    CommandRun list = run_command({kKeel, "ctl", "--admin", admin, "--json", "list"});
    Json reply = Json::parse(list.out, nullptr, false);
    if (!reply.is_object() || reply.value("clients", Json::array()).empty()) return false;
    id = reply["clients"][0]["id"].dump();
    return true;
  }));
  CommandRun run = run_command({kKeel, "ctl", "--admin", admin, "watch", id});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err,
            "keel ctl: watch is not available under --model processes: its connections live in "
            "other processes (use --model reactor or threads)\n");
}

// From a pipe, attach takes the lines up to "~." as the session's, then the console reads on.
TEST(CtlConsole, AttachFromAPipe) {
  TempDir dir;
  const std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess server({kKeel, "hub", "--listen", "127.0.0.1:0", "--admin", admin});
  std::optional<int> port = logged_port(server);
  ASSERT_TRUE(port) << server.err();
  Fd fd = connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(*port)));
  ASSERT_TRUE(fd.valid());
  LineClient client(std::move(fd));
  ASSERT_TRUE(client.send("parked line\n"));
  std::string id;
  ASSERT_TRUE(eventually([&] {
    CommandRun list = run_command({kKeel, "ctl", "--admin", admin, "--json", "list"});
    Json reply = Json::parse(list.out, nullptr, false);
    if (!reply.is_object() || reply.value("clients", Json::array()).empty()) return false;
    const Json& c = reply["clients"][0];
    id = c["id"].dump();
    return c.value("held", Json(0)) != Json(0) && c.value("held", Json(0)) != Json("0");
  })) << server.err();
  CommandRun run = run_command({kKeel, "ctl", "--admin", admin},
                               "attach " + id + "\nhello from the operator\n~.\nstats\n");
  EXPECT_EQ(run.code, 0) << run.err;
  // (After the hub's own notices, "* keel hub: ...".)
  std::optional<std::string> line = client.read_line();
  for (int i = 0; i < 5 && line && line->starts_with("* "); ++i) line = client.read_line();
  EXPECT_EQ(line, "hello from the operator");
  EXPECT_NE(run.out.find("parked line"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("uptime "), std::string::npos) << run.out;  // the console read on
}

}  // namespace
}  // namespace keel::test
