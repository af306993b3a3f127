// The chat service with real clients: delivery guarantees, private messages, nicknames, slow
// consumers, bad input and framed mode.
#include <map>
#include <set>

#include "integration/chat_fixture.h"

namespace keel::test {
namespace {

TEST_P(ChatServerTest, RoomsDeliverEveryMessageInSenderOrderAndNothingElse) {
  start();
  constexpr int kClients = 200, kRooms = 4, kMessages = 50;
  std::vector<std::unique_ptr<ChatClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<ChatClient>(endpoint()));
    ASSERT_TRUE(clients.back()->ok());
    ASSERT_TRUE(clients.back()->enter("c" + std::to_string(i), "#r" + std::to_string(i % kRooms)))
        << i;
  }
  for (int i = 0; i < kClients; ++i) {
    std::string batch;
    for (int m = 0; m < kMessages; ++m) batch += "m" + std::to_string(m) + "\n";
    clients[i]->send_raw(batch);
  }
  constexpr int kExpected = (kClients / kRooms) * kMessages;
  for (int i = 0; i < kClients; ++i) {
    std::map<int, int> next_seq;  // sender -> next expected message number
    int received = 0;
    while (received < kExpected) {
      auto line = clients[i]->next(10s);
      ASSERT_TRUE(line) << "client " << i << " got " << received << " of " << kExpected;
      if (line->starts_with("*")) continue;  // join notices
      // "<cN> mK"
      size_t close = line->find("> m");
      ASSERT_TRUE(line->starts_with("<c") && close != std::string::npos) << *line;
      int sender = std::stoi(line->substr(2, close - 2));
      int seq = std::stoi(line->substr(close + 3));
      ASSERT_EQ(sender % kRooms, i % kRooms) << "client " << i << " got another room's " << *line;
      ASSERT_EQ(seq, next_seq[sender]) << "client " << i << " out of order from c" << sender;
      next_seq[sender] = seq + 1;
      ++received;
    }
    EXPECT_EQ(next_seq.size(), static_cast<size_t>(kClients / kRooms));
    for (auto [sender, n] : next_seq) EXPECT_EQ(n, kMessages) << "from c" << sender;
  }
  // Nothing beyond the expected messages is on its way: a marker sent now is the next line.
  clients[0]->send("end");
  auto line = clients[0]->until([](const std::string& s) { return !s.starts_with("*"); });
  EXPECT_EQ(line, "<c0> end");
}

TEST_P(ChatServerTest, PrivateMessagesReachOnlyTheirTarget) {
  start();
  ChatClient a(endpoint()), b(endpoint()), c(endpoint());
  ASSERT_TRUE(a.enter("alice", "#x") && b.enter("bob", "#x") && c.enter("carol", "#x"));
  a.send("/msg bob the secret");
  EXPECT_EQ(b.until([](const std::string& s) { return s.find("secret") != std::string::npos; }),
            "<alice> (private) the secret");
  EXPECT_EQ(a.until([](const std::string& s) { return s.find("secret") != std::string::npos; }),
            "* (private to bob) the secret");
  a.send("after");  // same sender: anything before it would have reached carol first
  std::vector<std::string> before;
  ASSERT_TRUE(c.until([](const std::string& s) { return s == "<alice> after"; }, 5s, &before));
  for (const auto& s : before) EXPECT_EQ(s.find("secret"), std::string::npos) << s;
  a.send("/msg nobody hi");
  EXPECT_EQ(a.until([](const std::string& s) { return s.starts_with("!"); }),
            "! no such nick nobody");
}

TEST_P(ChatServerTest, NicknamesAreValidatedAndUnique) {
  start();
  ChatClient a(endpoint()), b(endpoint());
  b.send("/join #x");
  EXPECT_EQ(b.until([](const std::string& s) { return s.starts_with("!"); }),
            "! choose a nickname first: /nick NAME");
  a.send("/nick alice");
  ASSERT_TRUE(a.until_line("* you are now alice"));
  b.send("/nick ALICE");
  EXPECT_EQ(b.until([](const std::string& s) { return s.starts_with("!"); }),
            "! nickname ALICE is taken");
  b.send("/nick bad name");
  EXPECT_EQ(b.until([](const std::string& s) { return s.starts_with("!"); }),
            "! invalid nickname: use 1-32 letters, digits, '_', '-' or '.'");
  b.send("/nick " + std::string(33, 'x'));
  EXPECT_TRUE(b.until([](const std::string& s) { return s.starts_with("! invalid nickname"); }));
  b.send("/nick alice.2");
  EXPECT_TRUE(b.until_line("* you are now alice.2"));
  // A nickname is free again once its owner leaves.
  a.send("/quit");
  ASSERT_TRUE(a.until_line("* bye"));
  EXPECT_FALSE(a.next(5s)) << "expected EOF after /quit";
  b.send("/nick alice");
  EXPECT_TRUE(b.until_line("* you are now alice"));
}

TEST_P(ChatServerTest, CommandsAnswerAndUnknownOnesAreErrors) {
  start();
  ChatClient a(endpoint()), b(endpoint());
  ASSERT_TRUE(a.enter("alice", "#lobby") && b.enter("bob", "lobby"));
  a.send("/who");
  EXPECT_TRUE(a.until_line("* in #lobby: alice, bob"));
  a.send("/rooms");
  EXPECT_TRUE(a.until_line("* rooms: #lobby (2)"));
  a.send("/me waves");
  EXPECT_TRUE(b.until_line("* alice waves"));
  a.send("/frobnicate now");
  EXPECT_TRUE(a.until_line("! unknown command /frobnicate (try /help)"));
  b.send("/leave");
  EXPECT_TRUE(a.until_line("* bob left #lobby"));
  b.send("hello?");
  EXPECT_TRUE(b.until_line("! join a room first: /join ROOM"));
}

TEST_P(ChatServerTest, SlowConsumerIsDroppedWithAReasonAndTheRoomGoesOn) {
  constexpr size_t kMaxQueued = 64 * 1024;
  start({}, kMaxQueued);
  ChatClient slow(endpoint(), chat::Framing::lines, 4096);
  ChatClient talker(endpoint()), reader(endpoint());
  ASSERT_TRUE(slow.enter("slow", "#s") && talker.enter("talker", "#s") &&
              reader.enter("reader", "#s"));
  std::string line(1000, 'x');
  auto evicted = [&] {
    bool found = false;
    engine().visit([&](const ClientSnapshot& c) { found |= c.state != ConnectionState::open; });
    return found;
  };
  size_t max_buffered = 0;
  int batches = 0;
  while (!evicted()) {
    ASSERT_LT(++batches, 2000) << "the slow reader was never dropped";
    for (int i = 0; i < 32; ++i) talker.send(line);
    // The talker and the reader keep reading: only `slow` falls behind.
    for (int i = 0; i < 32; ++i)
      ASSERT_TRUE(reader.until([](const std::string& s) { return s.starts_with("<talker>"); }));
    for (int i = 0; i < 32; ++i)
      ASSERT_TRUE(talker.until([](const std::string& s) { return s.starts_with("<talker>"); }));
    size_t buffered = 0;
    engine().visit([&](const ClientSnapshot& c) { buffered += c.buffer_bytes; });
    max_buffered = std::max(max_buffered, buffered);
  }
  // Server memory for all three stayed within the slow one's queue bound (plus small change).
  EXPECT_LE(max_buffered, 2 * (kMaxQueued + 64 * 1024) + 64 * 1024);
  // The slow client, reading at last, finds the reason line and then the end.
  std::vector<std::string> backlog;
  auto last = slow.until([](const std::string& s) { return s.starts_with("! "); }, 5s, &backlog);
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->starts_with("! disconnected: too slow")) << *last;
  EXPECT_FALSE(slow.next(5s)) << "expected EOF after the reason line";
  // The room goes on.
  talker.send("still here");
  EXPECT_TRUE(reader.until_line("<talker> still here"));
  EXPECT_TRUE(reader.until([](const std::string& s) { return s.starts_with("* slow left #s"); }));
}

TEST_P(ChatServerTest, OverlongLineGetsAnErrorAndAClose) {
  start();
  ChatClient a(endpoint()), b(endpoint());
  ASSERT_TRUE(b.enter("bob", "#x"));
  a.send_raw(std::string(5000, 'x'));
  EXPECT_TRUE(a.until_line("! error: line too long (max 4096 bytes); closing"));
  EXPECT_FALSE(a.next(5s)) << "expected EOF";
  b.send("/who");  // the server is fine
  EXPECT_TRUE(b.until_line("* in #x: bob"));
}

TEST_P(ChatServerTest, BinaryGarbageNeitherCrashesNorStalls) {
  start();
  ChatClient a(endpoint()), b(endpoint());
  ASSERT_TRUE(a.enter("alice", "#x") && b.enter("bob", "#x"));
  std::string garbage = pattern_bytes(64 * 1024, 99);
  for (size_t i = 100; i < garbage.size(); i += 100) garbage[i] = '\n';  // lines under the limit
  garbage.back() = '\n';
  a.send_raw(garbage);
  a.send("/rooms");
  EXPECT_TRUE(a.until_line("* rooms: #x (2)", 10s));
  // What bob saw of it has no control characters left.
  b.send("marker");
  std::vector<std::string> seen;
  ASSERT_TRUE(b.until([](const std::string& s) { return s == "<bob> marker"; }, 10s, &seen));
  for (const auto& s : seen)
    for (char ch : s) ASSERT_FALSE(static_cast<unsigned char>(ch) < 0x20 && ch != '\t') << s;
}

TEST_P(ChatServerTest, LengthFramedMode) {
  chat::ChatOptions options;
  options.framing = chat::Framing::length;
  options.max_line_bytes = 1024;
  start(options);
  ChatClient a(endpoint(), chat::Framing::length), b(endpoint(), chat::Framing::length);
  ASSERT_TRUE(a.enter("alice", "#f") && b.enter("bob", "#f"));
  a.send("line one\nstill the same message");  // a newline is just a byte here
  EXPECT_TRUE(b.until_line("<alice> line one?still the same message"));
  a.send_raw(std::string("\0\0\x10\0", 4));  // 4096 > 1024
  EXPECT_TRUE(a.until_line("! error: line too long (max 1024 bytes); closing"));
  EXPECT_FALSE(a.next(5s));
}

// Chat shares state across connections, so it runs where connections share the process.
INSTANTIATE_TEST_SUITE_P(Models, ChatServerTest, ::testing::ValuesIn(in_process_models()),
                         model_name);

}  // namespace
}  // namespace keel::test
