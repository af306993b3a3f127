// An in-process echo server for integration tests: an engine of the test's model (the reactor
// with a LoopPool by default) on 127.0.0.1 port 0 (or whatever endpoint a test asks for), torn
// down after each test. EchoEngineTest runs a test under every model (TEST_P).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "integration/models.h"
#include "integration/recording_service.h"
#include "keel/engine/factory.h"
#include "keel/engine/reactor.h"
#include "keel/net/loop_pool.h"
#include "keel/net/tcp_server.h"
#include "proc_util.h"
#include "services/echo/echo_service.h"
#include "test_util.h"

namespace keel::test {

class EchoServerTest : public ::testing::Test {
 protected:
  // Starts the engine, then the pool, as `keel serve` does; endpoint() is the bound address.
  // Uses the plain EchoService unless a service is given (it must be a member of the fixture: it
  // outlives the engine). The order matters for the processes model (see ready_to_start).
  void start(ServerOptions options = {}, size_t threads = 2, Service* service = nullptr) {
    if (options.listen.empty()) options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    ASSERT_TRUE(ready_to_start(model_));
    pool_ = std::make_unique<LoopPool>(threads);
    engine_ = make_engine(model_, *pool_, std::move(options), service ? *service : echo_);
    engine_->start();
    pool_->start();
    ASSERT_FALSE(engine_->endpoints().empty());
    endpoint_ = engine_->endpoints().front();
  }

  void TearDown() override {
    engine_.reset();  // stops the server while its loops still run
    pool_.reset();
  }

  Engine& engine() { return *engine_; }
  // Reactor-only tests look inside the reactor.
  TcpServer& server() { return dynamic_cast<ReactorEngine&>(*engine_).server(); }
  LoopPool& pool() { return *pool_; }
  const Endpoint& endpoint() const { return endpoint_; }

  // A blocking client connected to the server (an invalid Fd, and a test failure, if not).
  Fd connect_client() {
    Fd fd = connect_to(endpoint_);
    EXPECT_TRUE(fd.valid()) << "connect " << endpoint_.to_string() << ": " << std::strerror(errno);
    return fd;
  }

  // Connections alive on the pool's loops (counted on the loop threads).
  size_t live_connections() {
    std::atomic<size_t> n{0};
    pool_->run_on_all_and_wait([&](EventLoop& loop) {
      size_t here = 0;
      loop.for_each_connection([&](TcpConnection&) { ++here; });
      n += here;
    });
    return n;
  }

  Model model_ = Model::reactor;
  EchoService echo_;
  RecordingService recorder_;
  std::unique_ptr<LoopPool> pool_;
  std::unique_ptr<Engine> engine_;
  Endpoint endpoint_;
};

// The same tests under each model: TEST_P(EchoEngineTest, ...) and an INSTANTIATE line naming
// the models (all of them, or those sharing memory with the test when it inspects the service).
class EchoEngineTest : public EchoServerTest, public ::testing::WithParamInterface<Model> {
 protected:
  void SetUp() override { model_ = GetParam(); }
};

// "equal" or where two byte strings first differ: keeps failure output small for big payloads.
inline std::string describe_difference(const std::string& got, const std::string& want) {
  if (got == want) return "equal";
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         "; first difference at offset " + std::to_string(i);
}

}  // namespace keel::test
