// ChatService against a Server that probes the service's lock from inside every call: no send,
// shutdown or pause happens while the chat state is locked (other loops fan out meanwhile), and
// what a handler does to connections still happens in the order it did it.
#include "services/chat/chat_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

namespace keel::chat {
namespace {

using namespace std::chrono_literals;

class ProbingServer final : public Server {
 public:
  explicit ProbingServer(ChatService& chat) : chat_(chat) {}

  bool send(ConnectionId id, std::string_view bytes) override {
    probe();
    calls.push_back(std::to_string(id.value()) + " " + std::string(bytes));
    return true;
  }
  size_t send_many(const std::vector<ConnectionId>& ids, std::string_view bytes) override {
    probe();
    for (ConnectionId id : ids)
      calls.push_back(std::to_string(id.value()) + " " + std::string(bytes));
    return ids.size();
  }
  bool shutdown(ConnectionId id) override {
    probe();
    calls.push_back(std::to_string(id.value()) + " FIN");
    return true;
  }
  bool close(ConnectionId, std::string_view) override { return true; }
  bool close_gracefully(ConnectionId, std::string_view, std::string_view,
                        std::chrono::milliseconds) override {
    return true;
  }
  bool pause_reading(ConnectionId) override {
    probe();
    return true;
  }
  bool resume_reading(ConnectionId) override {
    probe();
    return true;
  }
  TimerId start_timer(ConnectionId, std::chrono::milliseconds, TimerTask) override { return 0; }
  void cancel_timer(ConnectionId, TimerId) override {}

  std::vector<std::string> calls;
  int locked_calls = 0;  // calls made while another thread could not take the chat's lock

 private:
  // Another thread asks the service for something that takes its lock. If the lock is held by
  // the caller of this Server method, that thread waits until the call returns: count it.
  // A waiting thread is kept (its future's destructor would wait for the lock this thread
  // holds) and joined when the server goes, after the service has let go.
  void probe() {
    auto other = std::async(std::launch::async, [this] { return chat_.message_counts(); });
    if (other.wait_for(2s) == std::future_status::ready) return;
    ++locked_calls;
    waiting_.push_back(std::move(other));
  }

  ChatService& chat_;
  std::vector<std::future<std::optional<MessageCounts>>> waiting_;
};

void say(ChatService& chat, Server& server, ConnectionId id, std::string_view text) {
  Buffer in;
  in.append(text);
  chat.on_data(server, id, in);
}

TEST(ChatService, NothingIsSentWhileTheRoomStateIsLocked) {
  ChatService chat;
  ProbingServer server(chat);
  const ConnectionId a(0, 1, 0), b(0, 2, 0);
  chat.on_open(server, {a, Endpoint()});
  chat.on_open(server, {b, Endpoint()});
  say(chat, server, a, "/nick ann\n/join r\n");
  say(chat, server, b, "/nick bob\n/join r\n");
  server.calls.clear();
  const uint64_t out_before = chat.message_counts()->out;

  say(chat, server, a, "hello\n");
  say(chat, server, b, "/quit\n");

  EXPECT_EQ(server.locked_calls, 0);
  // In order: ann's line to both; bob's goodbye, the room told he left, then bob's FIN.
  const std::string ai = std::to_string(a.value()), bi = std::to_string(b.value());
  std::vector<std::string> want = {ai + " <ann> hello\n", bi + " <ann> hello\n", bi + " * bye\n",
                                   ai + " * bob left #r (quit)\n", bi + " FIN"};
  EXPECT_EQ(server.calls, want);
  EXPECT_EQ(chat.message_counts()->out - out_before, 4u);  // ann's line twice, bye, the notice
}

}  // namespace
}  // namespace keel::chat
