// An in-process engine on 127.0.0.1 port 0 for the engine tests (the threads engine by default;
// EngineVerbsTest runs a test under each in-process model), and a service that records opens
// and closes so tests can name connections by id from outside.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "integration/models.h"
#include "integration/recording_service.h"
#include "keel/engine/factory.h"
#include "keel/engine/threads.h"
#include "test_util.h"

namespace keel::test {

class ThreadsEngineTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}, Service* service = nullptr) {
    if (options.listen.empty()) options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    // The engine before the pool's threads: the processes model forks (see ready_to_start).
    ASSERT_TRUE(ready_to_start(model_));
    pool_ = std::make_unique<LoopPool>(2);
    engine_ = make_engine(model_, *pool_, std::move(options), service ? *service : recorder_);
    engine_->start();
    pool_->start();
    ASSERT_FALSE(engine_->endpoints().empty());
    endpoint_ = engine_->endpoints().front();
  }
  void TearDown() override {
    engine_.reset();
    pool_.reset();
  }

  Engine& engine() { return *engine_; }

  // A service for this test that outlives the engine (a local in the test body would not).
  template <typename S>
  S& own_service() {
    auto service = std::make_unique<S>();
    S& ref = *service;
    owned_service_ = std::move(service);
    return ref;
  }

  Fd connect_client() {
    Fd fd = connect_to(endpoint_);
    EXPECT_TRUE(fd.valid()) << "connect " << endpoint_.to_string() << ": " << std::strerror(errno);
    return fd;
  }

  // The id of the n-th connection service opened (waits for it).
  ConnectionId opened_id(const RecordingService& service, size_t n) {
    std::vector<ConnectionId> ids;
    EXPECT_TRUE(eventually([&] {
      ids = service.opened();
      return ids.size() > n;
    }));
    return ids.size() > n ? ids[n] : ConnectionId();
  }

  // The snapshot of id, if it is live.
  std::optional<ClientSnapshot> snapshot(ConnectionId id) {
    std::optional<ClientSnapshot> out;
    engine_->visit([&](const ClientSnapshot& s) {
      if (s.id == id) out = s;
    });
    return out;
  }

  Model model_ = Model::threads;
  RecordingService recorder_;
  std::unique_ptr<Service> owned_service_;  // before engine_: destroyed after it
  std::unique_ptr<LoopPool> pool_;          // drives the reactor
  std::unique_ptr<Engine> engine_;
  Endpoint endpoint_;
};

// The Server verbs (timers, pause/resume, drain, stop, cross-thread visit and send) under each
// model whose connections live in this process.
class EngineVerbsTest : public ThreadsEngineTest, public ::testing::WithParamInterface<Model> {
 protected:
  void SetUp() override { model_ = GetParam(); }
};

}  // namespace keel::test
