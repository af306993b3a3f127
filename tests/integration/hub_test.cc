// The hub with an operator attached over the admin endpoint, under the reactor and threads:
// held bytes in order, the bound pauses reading and nothing is dropped, lines both ways,
// detach parks again, one operator at a time, the client leaving ends the session, and an
// operator that does not read cannot grow keel's memory.
#include <thread>

#include "integration/hub_fixture.h"

namespace keel::test {
namespace {

TEST_P(HubTest, HeldBytesComeFirstThenLiveThenTheOperatorAnswers) {
  start();
  LineClient client = connect_hub();
  const uint64_t id = id_of(client);
  ASSERT_NE(id, kNoId);
  ASSERT_TRUE(client.send("one\ntwo\n"));
  ASSERT_TRUE(eventually([&] { return held(id) == 8; }));

  LineClient admin = connect_admin();
  Json reply =
      admin.request(Json{{"cmd", "attach"}, {"to", client.local_address()}, {"operator", "alice"}});
  ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
  EXPECT_EQ(reply["attached"], id);
  EXPECT_EQ(reply["held"], 8);
  EXPECT_EQ(reply["framing"], "lines");
  EXPECT_EQ(reply["service"], "hub");
  EXPECT_EQ(read_data(admin, 8), "one\ntwo\n");

  ASSERT_TRUE(client.send("three\n"));
  EXPECT_EQ(read_data(admin, 6), "three\n");
  reply = admin.request(Json{{"cmd", "say"}, {"text", "hello client"}});
  EXPECT_EQ(reply.value("ok", false), true) << reply.dump();
  EXPECT_EQ(client.read_line(), "hello client");
  reply = admin.request(Json{{"cmd", "say"}, {"base64", admin::base64_encode("bytes")}});
  EXPECT_EQ(reply.value("ok", false), true) << reply.dump();
  EXPECT_EQ(client.read_line(), "bytes");
  reply = admin.request(Json{{"cmd", "say"}, {"text", "two\nlines"}});
  EXPECT_EQ(reply.value("error", ""), "the hub frames by lines: a message must be one line");

  Json list = admin.request(Json{{"cmd", "list"}});
  bool found = false;
  for (const Json& row : list["clients"])
    if (row["id"] == id) {
      found = true;
      EXPECT_EQ(row.value("held", ""), "0");
      EXPECT_TRUE(row.value("attached", "").starts_with("alice (uid ")) << row.dump();
    }
  EXPECT_TRUE(found) << list.dump();

  reply = admin.request(Json{{"cmd", "detach"}});
  EXPECT_EQ(reply.value("detached", uint64_t{0}), id) << reply.dump();
  ASSERT_TRUE(client.send("four\n"));
  EXPECT_TRUE(eventually([&] { return held(id) == 5; })) << "parked again: held";
  reply = admin.request(Json{{"cmd", "say"}, {"text", "x"}});
  EXPECT_EQ(reply.value("error", ""), "not attached: attach to a client first");
}

TEST_P(HubTest, TheBoundPausesReadingAndAMebibyteArrivesByteExact) {
  const size_t bound = 64 * 1024;
  start({hub::HubFraming::binary, bound});
  LineClient client(connect_to(hub_engine_->endpoints().front()));
  uint64_t id = kNoId;
  ASSERT_TRUE(eventually([&] { return (id = id_of(client)) != kNoId; }));
  const std::string pushed = pattern_bytes(1 << 20);
  std::thread writer([&] { write_all(client.fd(), pushed, std::chrono::seconds(60)); });

  ASSERT_TRUE(eventually([&] { return reading_paused(id); })) << "held " << held(id);
  EXPECT_GE(held(id), bound);
  // One read past the bound at most: the loop reads into a scratch buffer of up to 128 KiB.
  EXPECT_LE(held(id), bound + 2 * EventLoop::kScratchBytes);

  LineClient admin = connect_admin();
  Json reply = admin.request(Json{{"cmd", "attach"}, {"to", id}});
  ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
  std::string got = read_data(admin, pushed.size());
  writer.join();
  ASSERT_EQ(got.size(), pushed.size());
  EXPECT_TRUE(got == pushed) << "the bytes differ";
}

TEST_P(HubTest, AnOperatorThatDoesNotReadPausesTheClient) {
  start({hub::HubFraming::binary, 64 * 1024});
  LineClient client(connect_to(hub_engine_->endpoints().front()));
  uint64_t id = kNoId;
  ASSERT_TRUE(eventually([&] { return (id = id_of(client)) != kNoId; }));
  LineClient admin = connect_admin();
  Json reply = admin.request(Json{{"cmd", "attach"}, {"to", id}});
  ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
  const std::string pushed = pattern_bytes(8 << 20, 7);
  std::thread writer([&] { write_all(client.fd(), pushed, std::chrono::seconds(60)); });
  // The operator reads nothing: the admin socket fills, then the window, then the client waits.
  ASSERT_TRUE(eventually([&] { return reading_paused(id); }));
  std::string got = read_data(admin, pushed.size());
  writer.join();
  ASSERT_EQ(got.size(), pushed.size());
  EXPECT_TRUE(got == pushed) << "the bytes differ";
}

TEST_P(HubTest, ASecondOperatorIsRefusedWithWhoHoldsTheClient) {
  start();
  LineClient client = connect_hub();
  const uint64_t id = id_of(client);
  LineClient first = connect_admin();
  ASSERT_EQ(
      first.request(Json{{"cmd", "attach"}, {"to", id}, {"operator", "alice"}}).value("ok", false),
      true);
  LineClient second = connect_admin();
  Json reply = second.request(Json{{"cmd", "attach"}, {"to", id}, {"operator", "bob"}});
  EXPECT_EQ(reply.value("ok", true), false);
  const std::string error = reply.value("error", "");
  EXPECT_TRUE(error.starts_with("client " + std::to_string(id) + " is attached by alice (uid " +
                                std::to_string(::geteuid()) + ", pid " +
                                std::to_string(::getpid()) + ") since "))
      << error;
  reply = first.request(Json{{"cmd", "attach"}, {"to", id}});
  EXPECT_EQ(reply.value("error", ""),
            "already attached to client " + std::to_string(id) + ": detach first");
  first = LineClient();  // the operator goes away: the client is free again
  EXPECT_TRUE(eventually([&] {
    LineClient third = connect_admin();
    return third.request(Json{{"cmd", "attach"}, {"to", id}}).value("ok", false);
  }));
}

TEST_P(HubTest, TheClientLeavingEndsTheSessionWithTheReason) {
  start();
  LineClient client = connect_hub();
  const uint64_t id = id_of(client);
  LineClient admin = connect_admin();
  ASSERT_EQ(admin.request(Json{{"cmd", "attach"}, {"to", id}}).value("ok", false), true);
  ASSERT_TRUE(client.send("bye\n"));
  EXPECT_EQ(read_data(admin, 4), "bye\n");
  client = LineClient();
  std::string line;
  do {
    auto next = admin.read_line();
    ASSERT_TRUE(next);
    line = *next;
  } while (Json::parse(line, nullptr, false).value("event", "") == "eof");
  Json ev = Json::parse(line, nullptr, false);
  EXPECT_EQ(ev.value("event", ""), "closed") << line;
  EXPECT_EQ(ev.value("reason", ""), "the client closed the connection") << line;
  // Back to plain requests.
  EXPECT_EQ(admin.request(Json{{"cmd", "detach"}}).value("error", ""), "not attached");
}

TEST_P(HubTest, OnlyHubClientsCanBeAttached) {
  start();
  LineClient echo(connect_to(echo_engine_->endpoints().front()));
  ASSERT_TRUE(echo.send("x\n"));
  ASSERT_EQ(echo.read_line(), "x");
  LineClient admin = connect_admin();
  Json reply = admin.request(Json{{"cmd", "attach"}, {"to", echo.local_address()}});
  EXPECT_TRUE(
      reply.value("error", "")
          .ends_with(" is an echo client, not a hub client: only hub clients can be attached"))
      << reply.dump();
  reply = admin.request(Json{{"cmd", "attach"}, {"to", "127.0.0.1:1"}});
  EXPECT_TRUE(reply.value("error", "").starts_with("no such client")) << reply.dump();
}

INSTANTIATE_TEST_SUITE_P(Models, HubTest, ::testing::ValuesIn(in_process_models()), model_name);

}  // namespace
}  // namespace keel::test
