// The hub acceptance case, as an operator does it from two terminals: `keel hub` with 50 parked
// clients, `keel ctl attach` as a subprocess with pipes for stdin and stdout: lines both ways,
// held bytes first and in order, `~.` detaches, attach another by id, a second operator is
// refused naming the holder, Ctrl-D detaches, and the client leaving ends the session.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "e2e/hub_util.h"
#include "e2e/subprocess.h"
#include "integration/admin_fixture.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;

class HubSession : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    admin_ = "unix:" + dir_.path() + "/admin.sock";
    server_ = std::make_unique<Subprocess>(std::vector<std::string>{
        kKeel, "hub", "--listen", "127.0.0.1:0", "--admin", admin_, "--max-held-bytes", "4096"});
    auto port = logged_port(*server_);
    ASSERT_TRUE(port) << server_->err();
    hub_ = Endpoint::parse("127.0.0.1:" + std::to_string(*port));
    ASSERT_TRUE(server_->wait_for_stderr("admin listening")) << server_->err();
  }
  void TearDown() override {
    clients_.clear();
    if (!server_) return;
    server_->signal(SIGTERM);
    EXPECT_EQ(server_->wait(), 0) << server_->err();
  }
  LineClient& connect() {
    clients_.emplace_back(connect_to(hub_));
    EXPECT_EQ(clients_.back().read_line(), "* keel hub: you are waiting for an operator");
    return clients_.back();
  }
  // Client address -> id, from keel ctl list --json.
  std::map<std::string, std::string> ids() {
    CommandRun list = run_keel({"ctl", "--admin", admin_, "--json", "list"});
    EXPECT_EQ(list.code, 0) << list.err;
    std::map<std::string, std::string> out;
    Json reply = Json::parse(list.out, nullptr, false);
    for (const Json& c : reply.value("clients", Json::array()))
      out[c.value("peer", "")] = c["id"].dump();
    return out;
  }
  std::unique_ptr<Subprocess> attach(const std::string& who) {
    return std::make_unique<Subprocess>(std::vector<std::string>{
        kKeel, "ctl", "--admin", admin_, "attach", who, "--operator", "alice"});
  }

  TempDir dir_;
  std::string admin_;
  std::unique_ptr<Subprocess> server_;
  Endpoint hub_;
  std::vector<LineClient> clients_;
};

TEST_F(HubSession, FiftyParkedClientsTwoSessionsLinesBothWays) {
  clients_.reserve(50);
  for (int i = 0; i < 50; ++i) connect();
  LineClient& seven = clients_[7];
  LineClient& twenty = clients_[20];
  ASSERT_TRUE(seven.send("hello from 7\nsecond line\n"));
  ASSERT_TRUE(twenty.send("\x1b[31mred\x07 and caf\xc3\xa9\n"));
  std::map<std::string, std::string> id = ids();
  ASSERT_EQ(id.size(), 50u);
  const std::string seven_id = id[seven.local_address()];
  const std::string twenty_id = id[twenty.local_address()];
  CommandRun table = run_keel({"ctl", "--admin", admin_, "list"});
  EXPECT_NE(table.out.find("HELD"), std::string::npos) << table.out;

  // Attach by address: what was held, in order, then live lines both ways.
  auto session = attach(seven.local_address());
  ASSERT_TRUE(session->wait_for_stderr("attached to client " + seven_id)) << session->err();
  EXPECT_TRUE(shows(*session, "hello from 7\nsecond line\n")) << session->out();
  ASSERT_TRUE(seven.send("live line\n"));
  EXPECT_TRUE(shows(*session, "second line\nlive line\n")) << session->out();
  session->write_stdin("hi seven\n");
  EXPECT_EQ(seven.read_line(), "hi seven");

  // A second operator is refused, told who holds the client.
  CommandRun refused = run_keel({"ctl", "--admin", admin_, "attach", seven_id});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("keel ctl: client " + seven_id + " is attached by alice (uid "),
            std::string::npos)
      << refused.err;

  // ~. detaches; the client is parked again and what it sends is held.
  session->write_stdin("~.\n");
  EXPECT_EQ(session->wait(), 0) << session->err();
  EXPECT_NE(session->err().find("detached; client " + seven_id + " is parked again"),
            std::string::npos)
      << session->err();
  ASSERT_TRUE(seven.send("while parked again\n"));

  // Attach another by id: its text is shown escaped; the client leaving ends the session.
  auto other = attach(twenty_id);
  ASSERT_TRUE(other->wait_for_stderr("attached to client " + twenty_id)) << other->err();
  EXPECT_TRUE(shows(*other, "\\x1b[31mred\\x07 and caf\xc3\xa9\n")) << other->out();
  other->write_stdin("who are you?\n");
  EXPECT_EQ(twenty.read_line(), "who are you?");
  ASSERT_TRUE(twenty.send("bye\n"));
  EXPECT_TRUE(shows(*other, "bye\n")) << other->out();
  twenty = LineClient();
  EXPECT_EQ(other->wait(), 0) << other->err();
  EXPECT_NE(other->err().find("client " + twenty_id + " left: "), std::string::npos)
      << other->err();

  // Back to seven: the bytes held meanwhile come first; Ctrl-D detaches.
  auto again = attach(seven_id);
  ASSERT_TRUE(again->wait_for_stderr("attached to client " + seven_id)) << again->err();
  EXPECT_TRUE(shows(*again, "while parked again\n")) << again->out();
  again->close_stdin();
  EXPECT_EQ(again->wait(), 0) << again->err();
  EXPECT_NE(again->err().find("detached"), std::string::npos) << again->err();
  EXPECT_EQ(ids().size(), 49u);
}

TEST_F(HubSession, TheBoundPausesTheClientAndAttachDrainsEverythingInOrder) {
  LineClient& client = connect();
  const std::string pushed = numbered_lines(256 * 1024);
  std::thread writer([&] { write_all(client.fd(), pushed, std::chrono::seconds(60)); });
  const std::string id = ids()[client.local_address()];
  auto held = [&] {
    CommandRun list = run_keel({"ctl", "--admin", admin_, "--json", "list"});
    Json reply = Json::parse(list.out, nullptr, false);
    for (const Json& c : reply.value("clients", Json::array()))
      if (c["id"].dump() == id) return std::stoul(c.value("held", "0"));
    return 0ul;
  };
  // held reaches the bound (4096 here) and stays near it while the client pushes 256 KiB.
  ASSERT_TRUE(eventually([&] { return held() >= 4096; }));
  EXPECT_LE(held(), 4096u + 2 * 65536u) << "one read (the loop's 128 KiB scratch) past it at most";

  auto session = attach(id);
  ASSERT_TRUE(session->wait_for_stderr("attached to client " + id)) << session->err();
  expect_all_then_detach(*session, pushed, writer);
}

// Raw bytes over a TCP admin endpoint with a token file: binary framing shows every byte
// escaped and sends each typed line as it was typed; a length-framed hub shows a frame a line.
TEST(HubModes, BinaryOverTcpAdminWithATokenAndLengthFrames) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string token_file = dir.path() + "/token";
  std::ofstream(token_file) << "s3cret\n";
  Subprocess server({kKeel, "hub", "--binary", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                     "--admin-token-file", token_file});
  auto port = logged_port(server);
  auto admin_port = server.wait_for_stderr(R"(admin listening on 127\.0\.0\.1:(\d+))");
  ASSERT_TRUE(port && admin_port) << server.err();
  const std::string admin = "127.0.0.1:" + *admin_port;
  LineClient client(connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(*port))));
  ASSERT_TRUE(client.send(std::string("\0\x01\xff\n", 4)));
  CommandRun no_token = run_keel({"ctl", "--admin", admin, "attach", client.local_address()});
  EXPECT_EQ(no_token.code, 1);
  EXPECT_NE(no_token.err.find("unauthorized"), std::string::npos) << no_token.err;

  Subprocess session({kKeel, "ctl", "--admin", admin, "--token-file", token_file, "attach",
                      client.local_address()});
  ASSERT_TRUE(session.wait_for_stderr("attached to client .* binary")) << session.err();
  EXPECT_TRUE(eventually([&] { return session.out() == "\\x00\\x01\\xff\n"; })) << session.out();
  session.write_stdin("raw reply\n");
  EXPECT_EQ(client.read_line(), "raw reply");
  session.close_stdin();
  EXPECT_EQ(session.wait(), 0) << session.err();
  client = LineClient();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0) << server.err();

  Subprocess framed({kKeel, "hub", "--framing", "length", "--listen", "127.0.0.1:0", "--admin",
                     "unix:" + dir.path() + "/admin.sock"});
  port = logged_port(framed);
  ASSERT_TRUE(port && framed.wait_for_stderr("admin listening")) << framed.err();
  LineClient framed_client(connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(*port))));
  const int fd = framed_client.fd();
  const std::string greeting = "* keel hub: you are waiting for an operator";
  EXPECT_EQ(read_exactly(fd, 4 + greeting.size()).substr(4), greeting);
  ASSERT_TRUE(write_all(fd, std::string("\0\0\0\x05hello\0\0\0\x03"
                                        "a\nb",
                                        16)));
  Subprocess attach({kKeel, "ctl", "--admin", "unix:" + dir.path() + "/admin.sock", "attach",
                     framed_client.local_address()});
  EXPECT_TRUE(eventually([&] { return attach.out() == "hello\na\\nb\n"; })) << attach.out();
  attach.write_stdin("hi\n");
  EXPECT_EQ(read_exactly(fd, 6), std::string("\0\0\0\x02hi", 6));
  attach.write_stdin("~.\n");
  EXPECT_EQ(attach.wait(), 0) << attach.err();
  framed_client = LineClient();
  framed.signal(SIGTERM);
  EXPECT_EQ(framed.wait(), 0) << framed.err();
}

}  // namespace
}  // namespace keel::test
