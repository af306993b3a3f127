// The hub's bookkeeping against a recording Server and a recording OperatorStream: held bytes
// in order and bounded by pausing, attach hands them over first, credit resumes reading, detach
// parks again, a second operator is refused naming the holder, framing of operator text.
#include "services/hub/hub_service.h"

#include <gtest/gtest.h>

#include <vector>

namespace keel::hub {
namespace {

class RecordingServer final : public Server {
 public:
  bool send(ConnectionId, std::string_view bytes) override {
    sent.emplace_back(bytes);
    return true;
  }
  bool shutdown(ConnectionId) override {
    ++shutdowns;
    return true;
  }
  bool close(ConnectionId, std::string_view) override { return true; }
  bool close_gracefully(ConnectionId, std::string_view, std::string_view,
                        std::chrono::milliseconds) override {
    return true;
  }
  bool pause_reading(ConnectionId) override {
    paused = true;
    return true;
  }
  bool resume_reading(ConnectionId) override {
    paused = false;
    return true;
  }
  TimerId start_timer(ConnectionId, std::chrono::milliseconds, TimerTask) override { return 0; }
  void cancel_timer(ConnectionId, TimerId) override {}

  std::vector<std::string> sent;
  bool paused = false;
  int shutdowns = 0;
};

class RecordingStream final : public OperatorStream {
 public:
  explicit RecordingStream(std::string who) : holder_(std::move(who)) {}
  bool post(OperatorEvent ev) override {
    if (!open_) return false;
    events.push_back(std::move(ev));
    return true;
  }
  void end(OperatorEvent last) override {
    open_ = false;
    events.push_back(std::move(last));
  }
  bool open() const noexcept override { return open_; }
  const std::string& holder() const noexcept override { return holder_; }
  void on_written(WrittenFn fn) override { written = std::move(fn); }
  void on_operator_left(LeftFn fn) override { left = std::move(fn); }
  void leave() {
    open_ = false;
    if (left) left();
  }
  std::string data() const {
    std::string all;
    for (const auto& ev : events)
      if (ev.type == "data") all += ev.bytes;
    return all;
  }
  size_t credit() const {
    size_t n = 0;
    for (const auto& ev : events) n += ev.credit;
    return n;
  }

  std::vector<OperatorEvent> events;
  WrittenFn written;
  LeftFn left;

 private:
  std::string holder_;
  bool open_ = true;
};

const ConnectionId kId(1, 1, 1);

void feed(HubService& hub, Server& server, std::string_view bytes) {
  Buffer in;
  in.append(bytes);
  hub.on_data(server, kId, in);
  EXPECT_TRUE(in.empty()) << "the hub takes every byte it is given";
}

TEST(HubService, GreetsAParkedClientInItsFraming) {
  RecordingServer server;
  HubService lines;
  lines.on_open(server, {kId, Endpoint()});
  ASSERT_EQ(server.sent.size(), 1u);
  EXPECT_EQ(server.sent[0], "* keel hub: you are waiting for an operator\n");
  HubService binary({HubFraming::binary, 1024});
  binary.on_open(server, {kId, Endpoint()});
  EXPECT_EQ(server.sent.size(), 1u) << "binary clients get no greeting";
  HubService length({HubFraming::length, 1024});
  length.on_open(server, {kId, Endpoint()});
  ASSERT_EQ(server.sent.size(), 2u);
  EXPECT_EQ(server.sent[1].substr(0, 4), std::string("\0\0\0\x2b", 4));
}

TEST(HubService, HoldsInOrderAndPausesAtTheBound) {
  RecordingServer server;
  HubService hub({HubFraming::lines, 10});
  hub.on_open(server, {kId, Endpoint()});
  feed(hub, server, "abc");
  feed(hub, server, "defg");
  EXPECT_EQ(hub.held_bytes(kId), 7u);
  EXPECT_FALSE(server.paused);
  feed(hub, server, "hijklm");  // one read may pass the bound: nothing is dropped
  EXPECT_EQ(hub.held_bytes(kId), 13u);
  EXPECT_TRUE(server.paused);
  OperatorHooks::Fields fields;
  hub.describe(kId, fields);
  EXPECT_EQ(fields, (OperatorHooks::Fields{{"held", "13"}}));
}

TEST(HubService, AttachHandsOverTheHeldBytesFirstThenLive) {
  RecordingServer server;
  HubService hub({HubFraming::lines, 10});
  hub.on_open(server, {kId, Endpoint()});
  feed(hub, server, "0123456789AB");
  ASSERT_TRUE(server.paused);
  auto stream = std::make_shared<RecordingStream>("alice");
  std::string refusal;
  auto attached = hub.attach(kId, stream, &refusal);
  ASSERT_TRUE(attached) << refusal;
  EXPECT_EQ(attached->held_bytes, 12u);
  EXPECT_EQ(hub.held_bytes(kId), 0u);
  EXPECT_EQ(stream->data(), "0123456789AB");
  EXPECT_TRUE(server.paused) << "12 bytes are still on their way to the operator";
  stream->written(12);
  EXPECT_FALSE(server.paused) << "the operator has them: reading resumes";
  feed(hub, server, "live");
  EXPECT_EQ(stream->data(), "0123456789ABlive");
  EXPECT_EQ(stream->credit(), 16u);
  feed(hub, server, "more bytes");  // 14 in flight: over the window
  EXPECT_TRUE(server.paused);
  stream->written(14);
  EXPECT_FALSE(server.paused);
  OperatorHooks::Fields fields;
  hub.describe(kId, fields);
  EXPECT_EQ(fields, (OperatorHooks::Fields{{"held", "0"}, {"attached", "alice"}}));
}

TEST(HubService, ASecondOperatorIsRefusedNamingTheHolder) {
  RecordingServer server;
  HubService hub;
  hub.on_open(server, {kId, Endpoint()});
  auto first = std::make_shared<RecordingStream>("alice (uid 1000, pid 42) since T");
  std::string refusal;
  ASSERT_TRUE(hub.attach(kId, first, &refusal));
  auto second = std::make_shared<RecordingStream>("bob");
  EXPECT_FALSE(hub.attach(kId, second, &refusal));
  EXPECT_EQ(refusal, "client " + std::to_string(kId.value()) +
                         " is attached by alice (uid 1000, pid 42) since T");
  first->leave();
  EXPECT_TRUE(hub.attach(kId, second, &refusal)) << "free again after a detach";
  EXPECT_FALSE(hub.attach(ConnectionId(2, 2, 2), second, &refusal));
  EXPECT_EQ(refusal, "no such client " + std::to_string(ConnectionId(2, 2, 2).value()));
}

TEST(HubService, DetachParksAgainAndHoldsWhatComesNext) {
  RecordingServer server;
  HubService hub({HubFraming::lines, 10});
  hub.on_open(server, {kId, Endpoint()});
  auto stream = std::make_shared<RecordingStream>("alice");
  std::string refusal;
  ASSERT_TRUE(hub.attach(kId, stream, &refusal));
  feed(hub, server, "0123456789");  // not yet written to the operator
  EXPECT_TRUE(server.paused);
  stream->leave();
  EXPECT_FALSE(server.paused) << "parked with nothing held";
  feed(hub, server, "next");
  EXPECT_EQ(hub.held_bytes(kId), 4u);
  EXPECT_EQ(stream->data(), "0123456789");
  stream->written(10);  // credit of an ended session changes nothing
  EXPECT_EQ(hub.held_bytes(kId), 4u);
}

TEST(HubService, TheClientLeavingEndsTheSessionWithTheReason) {
  RecordingServer server;
  HubService hub;
  hub.on_open(server, {kId, Endpoint()});
  auto stream = std::make_shared<RecordingStream>("alice");
  std::string refusal;
  ASSERT_TRUE(hub.attach(kId, stream, &refusal));
  hub.on_close(server, kId, CloseReason{CloseReason::Kind::reset, 104, {}});
  ASSERT_FALSE(stream->events.empty());
  EXPECT_EQ(stream->events.back().type, "closed");
  ASSERT_EQ(stream->events.back().fields.size(), 1u);
  EXPECT_EQ(stream->events.back().fields[0].first, "reason");
  EXPECT_FALSE(stream->open());
}

TEST(HubService, AClientThatFinishesWhileAttachedIsFinished) {
  RecordingServer server;
  HubService hub;
  hub.on_open(server, {kId, Endpoint()});
  auto stream = std::make_shared<RecordingStream>("alice");
  std::string refusal;
  ASSERT_TRUE(hub.attach(kId, stream, &refusal));
  feed(hub, server, "bye\n");
  hub.on_peer_closed(server, kId);
  ASSERT_EQ(stream->events.size(), 2u);
  EXPECT_EQ(stream->events[1].type, "eof");
  EXPECT_EQ(server.shutdowns, 1);
}

TEST(HubService, AClientThatFinishesWithBytesHeldStaysUntilTheyAreTaken) {
  RecordingServer server;
  HubService hub;
  hub.on_open(server, {kId, Endpoint()});
  feed(hub, server, "last words");
  hub.on_peer_closed(server, kId);
  EXPECT_EQ(server.shutdowns, 0);
  auto stream = std::make_shared<RecordingStream>("alice");
  std::string refusal;
  ASSERT_TRUE(hub.attach(kId, stream, &refusal));
  ASSERT_EQ(stream->events.size(), 2u);
  EXPECT_EQ(stream->events[0].bytes, "last words");
  EXPECT_EQ(stream->events[1].type, "eof");
  EXPECT_EQ(server.shutdowns, 1) << "taken by an operator: finished";
  stream->leave();
  EXPECT_EQ(server.shutdowns, 1) << "once";

  HubService empty;
  empty.on_open(server, {kId, Endpoint()});
  empty.on_peer_closed(server, kId);
  EXPECT_EQ(server.shutdowns, 2);
}

TEST(HubService, OperatorTextIsFramedAsTheHubFrames) {
  EXPECT_EQ(HubService().operator_line("hi"), "hi\n");
  EXPECT_EQ(HubService({HubFraming::length, 1}).operator_line("hi"), std::string("\0\0\0\2hi", 6));
  EXPECT_EQ(HubService({HubFraming::binary, 1}).operator_line("hi"), "hi\n");
  EXPECT_EQ(HubService({HubFraming::binary, 1}).frame_message("a\nb"), "a\nb");
  EXPECT_EQ(HubService().frame_message("a"), "a\n");
  EXPECT_EQ(HubService({HubFraming::binary, 1}).kick_line("x"), "");
  EXPECT_EQ(parse_framing("length"), HubFraming::length);
  EXPECT_THROW(parse_framing("json"), std::invalid_argument);
}

}  // namespace
}  // namespace keel::hub
