// An in-process chat server and a line-reading test client for the chat integration tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "integration/models.h"
#include "keel/engine/factory.h"
#include "keel/net/loop_pool.h"
#include "services/chat/chat_service.h"
#include "test_util.h"

namespace keel::test {

using namespace std::chrono_literals;

// A blocking loopback client that reads whole lines (or length frames) with timeouts.
class ChatClient {
 public:
  explicit ChatClient(const Endpoint& ep, chat::Framing framing = chat::Framing::lines,
                      int rcvbuf = 0)
      : framing_(framing) {
    if (rcvbuf > 0) {  // small receive buffer: a client that stops reading backs up quickly
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
      if (::connect(fd, ep.sockaddr_ptr(), ep.sockaddr_len()) != 0) ::close(fd), fd = -1;
      fd_ = Fd(fd);
    } else {
      fd_ = connect_to(ep);
    }
  }
  bool ok() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

  void send(std::string_view text) { write_all(fd_.get(), chat::encode(framing_, text)); }
  void send_raw(std::string_view bytes) { write_all(fd_.get(), bytes); }

  // The next message, or nullopt at EOF or after timeout.
  std::optional<std::string> next(std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string out;
    for (;;) {
      if (chat::decode(framing_, buf_, 1 << 20, out) == chat::DecodeStatus::message) return out;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !wait_ready(fd_.get(), POLLIN, left)) return std::nullopt;
      char tmp[65536];
      ssize_t n = read_some(fd_.get(), tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }
  // Skips messages until one satisfies pred; returns it (nullopt at EOF/timeout).
  std::optional<std::string> until(const std::function<bool(const std::string&)>& pred,
                                   std::chrono::milliseconds timeout = 5s,
                                   std::vector<std::string>* skipped = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      auto m = next(std::max(left, std::chrono::milliseconds(1)));
      if (!m) return std::nullopt;
      if (pred(*m)) return m;
      if (skipped) skipped->push_back(*m);
    }
  }
  std::optional<std::string> until_line(const std::string& exact,
                                        std::chrono::milliseconds timeout = 5s) {
    return until([&](const std::string& s) { return s == exact; }, timeout);
  }
  // /nick then /join, waiting for the confirmations.
  bool enter(const std::string& nick, const std::string& room) {
    send("/nick " + nick);
    if (!until_line("* you are now " + nick)) return false;
    send("/join " + room);
    std::string name = room.starts_with('#') ? room : "#" + room;
    return until_line("* " + nick + " joined " + name).has_value();
  }

 private:
  Fd fd_;
  chat::Framing framing_;
  Buffer buf_;
};

// Runs each test under every model that can serve chat (TEST_P; the models are listed where the
// suite is instantiated).
class ChatServerTest : public ::testing::TestWithParam<Model> {
 protected:
  void start(chat::ChatOptions chat_options = {}, size_t high_water = 1 << 20, size_t threads = 2) {
    service_ = std::make_unique<chat::ChatService>(chat_options);
    pool_ = std::make_unique<LoopPool>(threads);
    pool_->start();
    ServerOptions options;
    options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    options.high_water_bytes = high_water;
    engine_ = make_engine(GetParam(), *pool_, options, *service_);
    engine_->start();
    endpoint_ = engine_->endpoints().front();
  }
  void TearDown() override {
    engine_.reset();
    pool_.reset();
  }
  const Endpoint& endpoint() const { return endpoint_; }
  LoopPool& pool() { return *pool_; }
  Engine& engine() { return *engine_; }

  std::unique_ptr<chat::ChatService> service_;
  std::unique_ptr<LoopPool> pool_;
  std::unique_ptr<Engine> engine_;
  Endpoint endpoint_;
};

}  // namespace keel::test
