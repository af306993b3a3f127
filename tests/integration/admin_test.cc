// The admin endpoint (AdminServer) over real sockets: list, send, broadcast, kick, stats,
// malformed and oversize requests, request order and stop. Access control: admin_auth_test.cc.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "admin_fixture.h"

namespace keel::test {
namespace {

// A client's id from its list entry; kNone when there is no entry (0 is a valid id).
constexpr uint64_t kNone = ~uint64_t{0};
uint64_t id_of(const Json& entry) {
  return entry.is_object() && entry["id"].is_number_unsigned() ? entry["id"].get<uint64_t>()
                                                               : kNone;
}

TEST_P(AdminEngineTest, ListShowsEveryClientWithIdPeerAndBytes) {
  start_admin();
  LineClient a = connect_service(*echo_engine_);
  LineClient b = connect_service(*rooms_engine_);
  ASSERT_TRUE(a.send("0123456789\n"));
  ASSERT_EQ(a.read_line(), "0123456789");

  LineClient admin = connect_admin();
  Json list = admin.request({{"cmd", "list"}});
  ASSERT_EQ(list["ok"], true) << list.dump();
  ASSERT_EQ(list["clients"].size(), 2u) << list.dump();

  Json ea = entry_for(list, a);
  ASSERT_TRUE(ea.is_object()) << list.dump();
  EXPECT_NE(id_of(ea), kNone);
  EXPECT_EQ(ea["service"], "echo");
  EXPECT_EQ(ea["state"], "open");
  EXPECT_EQ(ea["bytes_in"], 6 + 11);
  EXPECT_EQ(ea["bytes_out"], 6 + 11);
  EXPECT_EQ(ea["queued"], 0);
  EXPECT_TRUE(std::regex_match(ea.value("connected_since", ""),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << ea.dump();
  EXPECT_GE(ea.value("connected_s", -1.0), 0.0);
  EXPECT_FALSE(ea.contains("nick"));  // echo describes nothing

  Json eb = entry_for(list, b);
  ASSERT_TRUE(eb.is_object()) << list.dump();
  EXPECT_EQ(eb["service"], "rooms");
  EXPECT_EQ(eb["nick"], "u1");
  EXPECT_EQ(eb["room"], "#lobby");
  EXPECT_TRUE(eb["id"].is_number_unsigned()) << "describe() must not replace the id";
  EXPECT_NE(id_of(ea), id_of(eb));
  // Services in the order given: echo's clients first.
  EXPECT_EQ(list["clients"][0]["service"], "echo");
}

TEST_F(AdminTest, ListOfNoClientsIsEmpty) {
  start_admin();
  LineClient admin = connect_admin();
  Json list = admin.request({{"cmd", "list"}});
  EXPECT_EQ(list["ok"], true);
  EXPECT_TRUE(list["clients"].is_array() && list["clients"].empty()) << list.dump();
}

TEST_P(AdminEngineTest, SendByIdReachesExactlyThatClient) {
  start_admin();
  LineClient a = connect_service(*echo_engine_);
  LineClient b = connect_service(*echo_engine_);
  LineClient admin = connect_admin();
  Json list = admin.request({{"cmd", "list"}});
  uint64_t id_a = id_of(entry_for(list, a));
  ASSERT_NE(id_a, kNone);

  Json reply = admin.request({{"cmd", "send"}, {"to", std::to_string(id_a)}, {"text", "hi a"}});
  EXPECT_EQ(reply["ok"], true) << reply.dump();
  EXPECT_EQ(reply["sent_to"], Json::array({id_a}));
  EXPECT_EQ(a.read_line(), "hi a");
  // b got nothing: its next echo is the first thing it reads.
  ASSERT_TRUE(b.send("ping\n"));
  EXPECT_EQ(b.read_line(), "ping");

  // The id as a JSON number works too.
  reply = admin.request({{"cmd", "send"}, {"to", id_a}, {"text", "again"}});
  EXPECT_EQ(reply["ok"], true) << reply.dump();
  EXPECT_EQ(a.read_line(), "again");
}

TEST_P(AdminEngineTest, SendUsesTheServicesOperatorLine) {
  start_admin();
  LineClient r = connect_service(*rooms_engine_);
  LineClient admin = connect_admin();
  uint64_t id = id_of(entry_for(admin.request({{"cmd", "list"}}), r));
  Json reply = admin.request({{"cmd", "send"}, {"to", std::to_string(id)}, {"text", "hello"}});
  EXPECT_EQ(reply["ok"], true) << reply.dump();
  EXPECT_EQ(r.read_line(), "* operator: hello");
}

TEST_P(AdminEngineTest, SendByPeerAddress) {
  start_admin();
  LineClient a = connect_service(*echo_engine_);
  LineClient b = connect_service(*rooms_engine_);
  LineClient admin = connect_admin();
  Json reply = admin.request({{"cmd", "send"}, {"to", b.local_address()}, {"text", "by address"}});
  ASSERT_EQ(reply["ok"], true) << reply.dump();
  EXPECT_EQ(reply["sent_to"].size(), 1u);
  EXPECT_EQ(b.read_line(), "* operator: by address");
  ASSERT_TRUE(a.send("ping\n"));
  EXPECT_EQ(a.read_line(), "ping");

  reply = admin.request({{"cmd", "send"}, {"to", "127.0.0.1:1"}, {"text", "x"}});
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(reply["error"], "no such client 127.0.0.1:1");
}

TEST_P(AdminEngineTest, StaleOrUnknownIdIsNoSuchClient) {
  start_admin();
  LineClient admin = connect_admin();
  uint64_t stale = kNone;
  {
    LineClient gone = connect_service(*echo_engine_);
    stale = id_of(entry_for(admin.request({{"cmd", "list"}}), gone));
    ASSERT_NE(stale, kNone);
  }
  ASSERT_TRUE(eventually([&] { return admin.request({{"cmd", "list"}})["clients"].empty(); }));
  std::string want = "no such client " + std::to_string(stale);
  Json reply = admin.request({{"cmd", "send"}, {"to", std::to_string(stale)}, {"text", "x"}});
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(reply["error"], want);
  reply = admin.request({{"cmd", "kick"}, {"id", stale}});
  EXPECT_EQ(reply["error"], want);
  // Ids that name no loop, or nothing at all, and the admin connection itself.
  for (const char* bogus : {"17", "18446744073709551615", "99999999999"}) {
    reply = admin.request({{"cmd", "send"}, {"to", bogus}, {"text", "x"}});
    EXPECT_EQ(reply["error"], std::string("no such client ") + bogus) << reply.dump();
  }
}

TEST_P(AdminEngineTest, BroadcastReachesEveryClientOrTheNamedService) {
  start_admin();
  LineClient e1 = connect_service(*echo_engine_);
  LineClient e2 = connect_service(*echo_engine_);
  LineClient r1 = connect_service(*rooms_engine_);
  LineClient admin = connect_admin();

  Json reply = admin.request({{"cmd", "broadcast"}, {"text", "all"}});
  EXPECT_EQ(reply["ok"], true) << reply.dump();
  EXPECT_EQ(reply["recipients"], 3);
  EXPECT_EQ(e1.read_line(), "all");
  EXPECT_EQ(e2.read_line(), "all");
  EXPECT_EQ(r1.read_line(), "* operator: all");

  reply = admin.request({{"cmd", "broadcast"}, {"text", "echo only"}, {"service", "echo"}});
  EXPECT_EQ(reply["recipients"], 2) << reply.dump();
  EXPECT_EQ(e1.read_line(), "echo only");
  EXPECT_EQ(e2.read_line(), "echo only");
  ASSERT_TRUE(r1.send("ping\n"));
  EXPECT_EQ(r1.read_line(), "ping");

  reply = admin.request({{"cmd", "broadcast"}, {"text", "x"}, {"service", "nope"}});
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(reply["error"], "no such service nope");
}

TEST_P(AdminEngineTest, BroadcastToARoomReachesItsMembersOnly) {
  start_admin();
  LineClient e = connect_service(*echo_engine_);
  LineClient r1 = connect_service(*rooms_engine_);
  LineClient r2 = connect_service(*rooms_engine_);
  LineClient admin = connect_admin();
  Json reply = admin.request({{"cmd", "broadcast"}, {"text", "lobby"}, {"room", "#lobby"}});
  EXPECT_EQ(reply["ok"], true) << reply.dump();
  EXPECT_EQ(reply["recipients"], 2);
  EXPECT_EQ(r1.read_line(), "* operator: lobby");
  EXPECT_EQ(r2.read_line(), "* operator: lobby");
  ASSERT_TRUE(e.send("ping\n"));
  EXPECT_EQ(e.read_line(), "ping");

  reply = admin.request({{"cmd", "broadcast"}, {"text", "x"}, {"room", "#nope"}});
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(reply["error"], "no such room #nope");
  // Echo has no rooms at all.
  reply =
      admin.request({{"cmd", "broadcast"}, {"text", "x"}, {"room", "#lobby"}, {"service", "echo"}});
  EXPECT_EQ(reply["error"], "no such room #lobby");
}

TEST_P(AdminEngineTest, KickSendsTheKickLineThenCloses) {
  start_admin();
  LineClient admin = connect_admin();
  {
    LineClient r = connect_service(*rooms_engine_);
    uint64_t id = id_of(entry_for(admin.request({{"cmd", "list"}}), r));
    Json reply = admin.request({{"cmd", "kick"}, {"id", id}, {"reason", "spam"}});
    EXPECT_EQ(reply["ok"], true) << reply.dump();
    EXPECT_EQ(reply["kicked"], id);
    std::string rest;
    EXPECT_EQ(r.read_to_end(&rest), StreamEnd::eof);
    EXPECT_EQ(rest, "* kicked: spam\n");
  }  // the client closes its side too: the connection is finished
  EXPECT_TRUE(eventually([&] { return admin.request({{"cmd", "list"}})["clients"].empty(); }, 2s));
}

TEST_P(AdminEngineTest, KickOfAnEchoClientIsJustEof) {
  start_admin();
  LineClient e = connect_service(*echo_engine_);
  LineClient other = connect_service(*echo_engine_);
  LineClient admin = connect_admin();
  uint64_t id = id_of(entry_for(admin.request({{"cmd", "list"}}), e));
  Json reply = admin.request({{"cmd", "kick"}, {"id", std::to_string(id)}});
  EXPECT_EQ(reply["ok"], true) << reply.dump();
  std::string rest;
  EXPECT_EQ(e.read_to_end(&rest), StreamEnd::eof);
  EXPECT_EQ(rest, "");
  ASSERT_TRUE(other.send("still here\n"));
  EXPECT_EQ(other.read_line(), "still here");
}

TEST_P(AdminEngineTest, StatsCountsConnectionsPerService) {
  start_admin();
  LineClient e1 = connect_service(*echo_engine_);
  LineClient e2 = connect_service(*echo_engine_);
  LineClient admin = connect_admin();
  Json stats = admin.request({{"cmd", "stats"}});
  ASSERT_EQ(stats["ok"], true) << stats.dump();
  EXPECT_GE(stats.value("uptime_s", -1.0), 0.0);
  EXPECT_GT(stats.value("rss_kib", 0), 0);
  ASSERT_EQ(stats["services"].size(), 2u);
  const Json& echo = stats["services"][0];
  EXPECT_EQ(echo["service"], "echo");
  EXPECT_EQ(echo["endpoints"], Json::array({echo_engine_->endpoints().front().to_string()}));
  EXPECT_EQ(echo["connections"], 2);
  EXPECT_EQ(echo["accepted"], 2);
  EXPECT_EQ(echo["rejected_over_cap"], 0);
  EXPECT_EQ(stats["services"][1]["service"], "rooms");
  EXPECT_EQ(stats["services"][1]["connections"], 0);
}

TEST_F(AdminTest, MalformedRequestsGetAnErrorAndTheConnectionStaysUsable) {
  start_admin();
  LineClient admin = connect_admin();
  struct Case {
    std::string line, error;
  } cases[] = {
      {"{nope\n", "malformed JSON"},
      {"[1,2]\n", "a request is a JSON object"},
      {"{\"text\":\"x\"}\n", "missing \"cmd\""},
      {"{\"cmd\":\"reboot\"}\n",
       "unknown cmd reboot (list, send, broadcast, kick, stats, attach, say, detach or watch)"},
      {"{\"cmd\":\"send\",\"to\":\"1\"}\n", "missing \"text\""},
      {"{\"cmd\":\"send\",\"to\":\"1\",\"text\":\"two\\nlines\"}\n", "text must be one line"},
      {"{\"cmd\":\"kick\"}\n", "missing \"id\" (a client id)"},
      // Odd ids say what is wrong with them (-0.0 used to say "missing", "" an empty id).
      {"{\"cmd\":\"kick\",\"id\":-0.0}\n",
       "\"id\" must be a client id (a whole number from 0 up, as keel ctl list shows), got -0.0"},
      {"{\"cmd\":\"kick\",\"id\":\"\"}\n",
       "\"id\" is empty: give a client id (digits, as keel ctl list shows)"},
      {"{\"cmd\":\"kick\",\"id\":\"127.0.0.1:1\"}\n",
       "\"id\" must be a client id (digits, as keel ctl list shows), got \"127.0.0.1:1\""},
      {"{\"cmd\":\"send\",\"to\":\"\",\"text\":\"x\"}\n",
       "\"to\" is empty: give a client id or an address (as keel ctl list shows)"},
      {"{\"cmd\":\"send\",\"to\":null,\"text\":\"x\"}\n",
       "\"to\" must be a client id or an address (as keel ctl list shows), got null"},
  };
  for (const Case& c : cases) {
    Json reply = admin.request_line(c.line);
    EXPECT_EQ(reply["ok"], false) << c.line;
    EXPECT_EQ(reply["error"], c.error) << c.line;
  }
  EXPECT_EQ(admin.request({{"cmd", "stats"}})["ok"], true);
}

TEST_F(AdminTest, OversizeRequestIsRefusedAndClosed) {
  AdminOptions options = unix_options();
  options.max_request_bytes = 1024;
  start_admin(options);
  LineClient at_limit = connect_admin();
  std::string padded = R"({"cmd":"stats","pad":")";
  padded += std::string(1024 - padded.size() - 2, 'x') + "\"}";
  ASSERT_EQ(padded.size(), 1024u);
  EXPECT_EQ(at_limit.request_line(padded + "\n")["ok"], true);

  for (bool newline : {false, true}) {
    LineClient admin = connect_admin();
    ASSERT_TRUE(admin.send(std::string(2000, 'x') + (newline ? "\n" : "")));
    EXPECT_EQ(admin.read_line(), R"({"ok":false,"error":"request too long"})");
    std::string rest;
    EXPECT_EQ(admin.read_to_end(&rest), StreamEnd::eof);
    EXPECT_EQ(rest, "");
  }
}

TEST_F(AdminTest, RequestsOnOneConnectionAreAnsweredInOrder) {
  start_admin();
  LineClient e = connect_service(*echo_engine_);
  LineClient admin = connect_admin();
  std::string batch;
  for (int i = 0; i < 20; ++i) batch += i % 2 ? "{\"cmd\":\"stats\"}\n" : "{\"cmd\":\"list\"}\n";
  ASSERT_TRUE(admin.send(batch));
  for (int i = 0; i < 20; ++i) {
    auto line = admin.read_line();
    ASSERT_TRUE(line) << "reply " << i;
    Json reply = Json::parse(*line, nullptr, false);
    EXPECT_TRUE(reply.contains(i % 2 ? "services" : "clients")) << i << ": " << *line;
  }
}

// Replies nobody reads yet: past 1 MiB queued the server stops taking requests from this
// operator, and goes on (in order) as the replies are read.
TEST_F(AdminTest, UnreadRepliesPauseTheRequesterUntilRead) {
  start_admin();
  std::vector<LineClient> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(connect_service(*echo_engine_));
  LineClient admin = connect_admin();
  constexpr int kRequests = 600;  // about 5 KB each: ~3 MB of replies
  std::string batch;
  for (int i = 0; i < kRequests; ++i)
    batch += i % 2 ? R"({"cmd":"stats"})"
                     "\n"
                   : R"({"cmd":"list"})"
                     "\n";
  ASSERT_TRUE(admin.send(batch));
  for (int i = 0; i < kRequests; ++i) {
    auto line = admin.read_line();
    ASSERT_TRUE(line) << "reply " << i;
    ASSERT_NE(line->find(i % 2 ? "\"services\"" : "\"clients\""), std::string::npos) << i;
  }
}

TEST_F(AdminTest, HalfClosedRequesterStillGetsItsReply) {
  start_admin();
  LineClient admin = connect_admin();
  ASSERT_TRUE(admin.send("{\"cmd\":\"list\"}\n{\"cmd\":\"stats\"}"));  // last line unterminated
  ASSERT_EQ(::shutdown(admin.fd(), SHUT_WR), 0);
  std::string rest;
  EXPECT_EQ(admin.read_to_end(&rest), StreamEnd::eof);
  EXPECT_NE(rest.find("\"clients\""), std::string::npos) << rest;
  EXPECT_NE(rest.find("\"services\""), std::string::npos) << rest;
}

// Stopping with requests in flight: gathers still queued on the loops must not touch the
// stopped admin server or the engines (ASan catches it if they do).
TEST_F(AdminTest, StopWithRequestsInFlight) {
  std::vector<LineClient> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(connect_service(*echo_engine_));
  for (int round = 0; round < 20; ++round) {
    start_admin();
    LineClient admin = connect_admin();
    std::string batch;
    for (int i = 0; i < 50; ++i)
      batch += R"({"cmd":"list"})"
               "\n"
               R"({"cmd":"send","to":"127.0.0.1:1","text":"x"})"
               "\n";
    ASSERT_TRUE(admin.send(batch));
    ASSERT_TRUE(admin.read_line());
    admin_.reset();
  }
}

INSTANTIATE_TEST_SUITE_P(Models, AdminEngineTest, ::testing::ValuesIn(in_process_models()),
                         model_name);

}  // namespace
}  // namespace keel::test
