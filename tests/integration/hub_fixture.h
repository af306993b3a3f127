// An in-process hub (and an echo, to show that only hub clients attach) with an admin endpoint
// on a Unix socket, under each in-process model, and helpers for session event lines.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "admin/base64.h"
#include "integration/admin_fixture.h"
#include "services/hub/hub_service.h"

namespace keel::test {

class HubTest : public ::testing::TestWithParam<Model> {
 protected:
  void start(hub::HubOptions options = {}) {
    hub_ = std::make_unique<hub::HubService>(options);
    pool_ = std::make_unique<LoopPool>(2);
    pool_->start();
    hub_engine_ = start_engine(*hub_);
    echo_engine_ = start_engine(echo_);
    AdminOptions admin;
    admin.endpoint = Endpoint::parse("unix:" + dir_.path() + "/admin.sock");
    admin_ = std::make_unique<AdminServer>(
        admin, std::vector<Engine*>{hub_engine_.get(), echo_engine_.get()});
    admin_->start();
  }
  void TearDown() override {
    admin_.reset();
    echo_engine_.reset();
    hub_engine_.reset();
    pool_.reset();
  }
  std::unique_ptr<Engine> start_engine(Service& service) {
    ServerOptions options;
    options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    auto engine = make_engine(GetParam(), *pool_, std::move(options), service);
    engine->start();
    return engine;
  }

  // A hub client that has read its greeting (so the hub knows it).
  LineClient connect_hub() {
    LineClient client(connect_to(hub_engine_->endpoints().front()));
    EXPECT_EQ(client.read_line(), "* keel hub: you are waiting for an operator");
    return client;
  }
  LineClient connect_admin() { return LineClient(connect_to(admin_->endpoint())); }

  // The hub's id for client (by its address), once the engine lists it as open: a client can
  // have read its greeting while the threads engine still lists it as connecting (on_open has
  // not returned). kNoId if that does not happen within 10 s. (0 is a valid id.)
  static constexpr uint64_t kNoId = ~uint64_t{0};
  uint64_t id_of(const LineClient& client) {
    uint64_t id = kNoId;
    eventually([&] {
      hub_engine_->visit([&](const ClientSnapshot& s) {
        if (s.peer.to_string() == client.local_address() && s.state != ConnectionState::connecting)
          id = s.id.value();
      });
      return id != kNoId;
    });
    return id;
  }
  bool reading_paused(uint64_t id) {
    bool paused = false;
    hub_engine_->visit([&](const ClientSnapshot& s) {
      if (s.id.value() == id) paused = s.reading_paused;
    });
    return paused;
  }
  size_t held(uint64_t id) { return hub_->held_bytes(ConnectionId::from_value(id)); }

  // Reads event lines from an attached admin client until `bytes` data bytes have come (or
  // another event, or a reply, stops it); returns the data. *other: the line that stopped it.
  static std::string read_data(LineClient& admin, size_t bytes, std::string* other = nullptr) {
    std::string data;
    while (data.size() < bytes) {
      auto line = admin.read_line();
      if (!line) break;
      Json ev = Json::parse(*line, nullptr, false);
      if (ev.value("event", "") != "data") {
        if (other) *other = *line;
        break;
      }
      data += admin::base64_decode(ev.value("data", "")).value_or("<bad base64>");
    }
    return data;
  }

  TempDir dir_;
  EchoService echo_;
  std::unique_ptr<hub::HubService> hub_;
  std::unique_ptr<LoopPool> pool_;
  std::unique_ptr<Engine> hub_engine_;
  std::unique_ptr<Engine> echo_engine_;
  std::unique_ptr<AdminServer> admin_;
};

}  // namespace keel::test
