// An in-process keel with an admin endpoint for the admin tests: a LoopPool, an echo engine and
// a "rooms" engine (an echo that uses every operator hook), and an AdminServer on a Unix socket
// in a fresh temporary directory (or whatever AdminOptions a test gives).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_server.h"
#include "integration/models.h"
#include "keel/engine/factory.h"
#include "keel/operator.h"
#include "services/echo/echo_service.h"
#include "test_util.h"

namespace keel::test {

using Json = nlohmann::ordered_json;

// Echo, plus every operator hook: clients are "u1", "u2", ... in room "#lobby".
class RoomsEchoService final : public Service, public OperatorHooks {
 public:
  const char* name() const noexcept override { return "rooms"; }
  void on_open(Server&, const ConnectionInfo& info) override {
    std::lock_guard lock(mutex_);
    members_.push_back(info.id);
    nicks_.push_back("u" + std::to_string(members_.size()));
  }
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    server.send(id, in.view());
    in.consume_all();
  }
  void on_close(Server&, ConnectionId id, const CloseReason&) override {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < members_.size(); ++i)
      if (members_[i] == id) members_[i] = ConnectionId();
  }
  void describe(ConnectionId id, Fields& fields) const override {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < members_.size(); ++i)
      if (members_[i] == id) {
        fields.emplace_back("nick", nicks_[i]);
        fields.emplace_back("room", "#lobby");
        fields.emplace_back("id", "not allowed to replace the id");
      }
  }
  std::string operator_line(std::string_view text) const override {
    return "* operator: " + std::string(text) + "\n";
  }
  std::string kick_line(std::string_view reason) const override {
    return "* kicked: " + std::string(reason) + "\n";
  }
  std::optional<std::vector<ConnectionId>> room_members(std::string_view room) const override {
    std::lock_guard lock(mutex_);
    std::vector<ConnectionId> out;
    if (room != "#lobby") return out;
    for (ConnectionId id : members_)
      if (id.valid()) out.push_back(id);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<ConnectionId> members_;
  std::vector<std::string> nicks_;
};

// A blocking line-oriented client (admin requests and service clients alike).
class LineClient {
 public:
  LineClient() = default;
  explicit LineClient(Fd fd) : fd_(std::move(fd)) {}
  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

  bool send(std::string_view bytes) { return write_all(fd_.get(), bytes); }
  // The next line without "\n"; nullopt at EOF, error or timeout.
  std::optional<std::string> read_line(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !wait_ready(fd_.get(), POLLIN, left)) return std::nullopt;
      char chunk[65536];
      ssize_t n = read_some(fd_.get(), chunk, sizeof chunk);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  // One request line, one reply parsed (a discarded value when none came).
  Json request(const Json& req) { return request_line(req.dump() + "\n"); }
  Json request_line(const std::string& line) {
    if (!send(line)) return Json::value_t::discarded;
    auto reply = read_line();
    if (!reply) return Json::value_t::discarded;
    return Json::parse(*reply, nullptr, false);
  }
  // Whatever is left, then how the stream ended.
  StreamEnd read_to_end(std::string* rest) {
    if (rest) *rest = std::exchange(buf_, {});
    return read_until_end(fd_.get(), rest);
  }
  // Where this client connects from, as the server shows it ("127.0.0.1:5555").
  std::string local_address() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).to_string();
  }

 private:
  Fd fd_;
  std::string buf_;
};

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto* param = dynamic_cast<const ::testing::WithParamInterface<Model>*>(this))
      model_ = param->GetParam();
    ASSERT_FALSE(dir_.path().empty());
    pool_ = std::make_unique<LoopPool>(2);
    pool_->start();
    echo_engine_ = start_engine(echo_);
    rooms_engine_ = start_engine(rooms_);
  }
  void TearDown() override {
    admin_.reset();
    rooms_engine_.reset();
    echo_engine_.reset();
    pool_.reset();
  }

  std::unique_ptr<Engine> start_engine(Service& service) {
    ServerOptions options;
    options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    auto engine = make_engine(model_, *pool_, std::move(options), service);
    engine->start();
    return engine;
  }

  std::string admin_path() const { return dir_.path() + "/admin.sock"; }
  AdminOptions unix_options() const {
    AdminOptions o;
    o.endpoint = Endpoint::parse("unix:" + admin_path());
    return o;
  }
  void start_admin(std::optional<AdminOptions> options = std::nullopt) {
    admin_ = std::make_unique<AdminServer>(
        options ? *options : unix_options(),
        std::vector<Engine*>{echo_engine_.get(), rooms_engine_.get()});
    admin_->start();
  }
  LineClient connect_admin() {
    Fd fd = connect_to(admin_->endpoint());
    EXPECT_TRUE(fd.valid()) << "connect " << admin_->endpoint().to_string();
    return LineClient(std::move(fd));
  }
  // A client of engine that has done one round trip (so the server has registered it).
  LineClient connect_service(Engine& engine) {
    Fd fd = connect_to(engine.endpoints().front());
    EXPECT_TRUE(fd.valid());
    LineClient client(std::move(fd));
    EXPECT_TRUE(client.send("hello\n"));
    EXPECT_EQ(client.read_line(), "hello");
    return client;
  }
  // The list entry whose peer is client's address (null when absent).
  static Json entry_for(const Json& list, const LineClient& client) {
    for (const Json& c : list.value("clients", Json::array()))
      if (c.value("peer", "") == client.local_address()) return c;
    return nullptr;
  }

  Model model_ = Model::reactor;
  TempDir dir_;
  EchoService echo_;
  RoomsEchoService rooms_;
  std::unique_ptr<LoopPool> pool_;
  std::unique_ptr<Engine> echo_engine_;
  std::unique_ptr<Engine> rooms_engine_;
  std::unique_ptr<AdminServer> admin_;
};

// The operator's view of clients (list, send, broadcast, kick, stats) under each model whose
// connections live in this process; the endpoint's own protocol tests stay TEST_F(AdminTest).
class AdminEngineTest : public AdminTest, public ::testing::WithParamInterface<Model> {};

}  // namespace keel::test
