// Admission limits under every engine: --max-connections is exact under a listener per loop
// (reuse-port) however many connect at once; --max-connections-per-ip closes the client over
// the limit at once, after a line when the service has one, frees the slot when a client
// leaves, and counts the PROXY header's address rather than the proxy's.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/models.h"
#include "keel/engine/factory.h"
#include "keel/net/proxy_stage.h"
#include "test_util.h"

namespace keel::test {
namespace {

constexpr std::string_view kFullLine = "refused: full\n";
constexpr std::string_view kPerIpLine = "refused: per address\n";

// Echo that knows how many of its connections are open at once, and says why it refuses.
class CountingEcho final : public Service {
 public:
  const char* name() const noexcept override { return "counting-echo"; }
  bool connections_independent() const noexcept override { return true; }
  void on_open(Server&, const ConnectionInfo&) override {
    size_t now = live_.fetch_add(1) + 1;
    size_t seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
  }
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    server.send(id, in.view());
    in.consume_all();
  }
  void on_close(Server&, ConnectionId, const CloseReason&) override { live_.fetch_sub(1); }
  std::string refusal_line(Refusal reason) const override {
    return std::string(reason == Refusal::per_address ? kPerIpLine : kFullLine);
  }
  size_t peak() const { return peak_.load(); }
  size_t live() const { return live_.load(); }

 private:
  std::atomic<size_t> live_{0};
  std::atomic<size_t> peak_{0};
};

struct Setup {
  Model model;
  bool reuse_port;
};

std::string setup_name(const ::testing::TestParamInfo<Setup>& info) {
  return std::string(to_string(info.param.model)) + (info.param.reuse_port ? "_reuse_port" : "");
}

class AdmissionTest : public ::testing::TestWithParam<Setup> {
 protected:
  void start(ServerOptions options, size_t loops = 2) {
    options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    options.listener_per_loop = GetParam().reuse_port;
    ASSERT_TRUE(ready_to_start(GetParam().model));
    pool_ = std::make_unique<LoopPool>(loops);
    engine_ = make_engine(GetParam().model, *pool_, std::move(options), service_);
    engine_->start();
    pool_->start();
    endpoint_ = engine_->endpoints().front();
  }
  void TearDown() override {
    if (engine_) engine_->stop();
    if (pool_) pool_->stop();
  }
  // A client the server keeps: it echoes.
  Fd admitted() {
    Fd c = connect_to(endpoint_);
    EXPECT_EQ(round_trip(c.get(), "ping"), "ping");
    return c;
  }
  // A client the server turns away: it reads line, then the end.
  void refused(std::string_view line, const std::string& header = "") {
    Fd c = connect_to(endpoint_);
    if (!header.empty()) {
      ASSERT_TRUE(write_all(c.get(), header));
    }
    std::string got;
    StreamEnd end = read_until_end(c.get(), &got, 5s);
    EXPECT_EQ(end, StreamEnd::eof) << to_string(end);
    EXPECT_EQ(got, line);
  }

  CountingEcho service_;
  std::unique_ptr<LoopPool> pool_;
  std::unique_ptr<Engine> engine_;
  Endpoint endpoint_;
};

TEST_P(AdmissionTest, PerIpClosesTheSixthAndAdmitsAgainOnceOneLeaves) {
  ServerOptions options;
  options.max_connections_per_ip = 5;
  start(std::move(options));
  std::vector<Fd> clients;
  for (int i = 0; i < 5; ++i) clients.push_back(admitted());
  refused(kPerIpLine);
  EXPECT_EQ(engine_->stats().rejected_per_ip, 1u);
  EXPECT_EQ(engine_->stats().rejected_over_cap, 0u);
  for (Fd& c : clients) EXPECT_EQ(round_trip(c.get(), "still here"), "still here");

  clients.erase(clients.begin());  // one leaves: its slot is freed when it has closed
  ASSERT_TRUE(eventually([&] { return engine_->connection_count() == 4; }, 5s));
  clients.push_back(admitted());
  refused(kPerIpLine);
  EXPECT_EQ(engine_->stats().rejected_per_ip, 2u);
}

INSTANTIATE_TEST_SUITE_P(Models, AdmissionTest,
                         ::testing::Values(Setup{Model::reactor, false},
                                           Setup{Model::reactor, true},
                                           Setup{Model::threads, false},
                                           Setup{Model::processes, false}),
                         setup_name);

// (Under processes the cap defers accepting instead: nobody is refused.)
class CapLineTest : public AdmissionTest {};

TEST_P(CapLineTest, MaxConnectionsTellsTheClientWhy) {
  ServerOptions options;
  options.max_connections = 2;
  start(std::move(options));
  Fd a = admitted();
  Fd b = admitted();
  refused(kFullLine);
  EXPECT_EQ(engine_->stats().rejected_over_cap, 1u);
  EXPECT_EQ(engine_->stats().rejected_per_ip, 0u);
}

INSTANTIATE_TEST_SUITE_P(Models, CapLineTest,
                         ::testing::Values(Setup{Model::reactor, false},
                                           Setup{Model::reactor, true},
                                           Setup{Model::threads, false}),
                         setup_name);

// The connections a service holds, and the engine's count, never pass --max-connections when
// many clients connect at once to several loops, each with its own listener.
class ExactCapTest : public AdmissionTest {};

TEST_P(ExactCapTest, ManyAtOnceNeverPassTheCap) {
  constexpr size_t kCap = 8, kThreads = 8, kPerThread = 40;
  ServerOptions options;
  options.max_connections = kCap;
  start(std::move(options), 4);
  std::vector<std::vector<Fd>> held(kThreads);
  std::atomic<size_t> max_count{0};
  std::atomic<bool> connecting{true};
  // Watches the engine's own count while the clients pour in.
  std::jthread watcher([&] {
    while (connecting.load()) {
      size_t n = engine_->connection_count();
      if (n > max_count.load()) max_count.store(n);
      std::this_thread::yield();
    }
  });
  {
    std::vector<std::jthread> threads;
    for (size_t t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (size_t i = 0; i < kPerThread; ++i) held[t].push_back(connect_to(endpoint_));
      });
  }
  const uint64_t total = kThreads * kPerThread;
  ASSERT_TRUE(eventually(
      [&] {
        EngineStats s = engine_->stats();
        return s.accepted + s.rejected_over_cap == total;
      },
      10s));
  connecting.store(false);
  watcher.join();
  EXPECT_LE(service_.peak(), kCap);
  EXPECT_EQ(engine_->stats().accepted, kCap);
  EXPECT_EQ(engine_->stats().rejected_over_cap, total - kCap);
  EXPECT_EQ(engine_->connection_count(), kCap);
  EXPECT_LE(max_count.load(), kCap) << "the engine's count passed the cap";
  // Exactly kCap clients are served; every other one was told and closed.
  size_t served = 0, told = 0;
  for (auto& list : held)
    for (Fd& c : list) {
      std::string got;
      if (!wait_ready(c.get(), POLLIN, 0ms)) {
        EXPECT_EQ(round_trip(c.get(), "x"), "x");
        ++served;
        continue;
      }
      EXPECT_EQ(read_until_end(c.get(), &got, 5s), StreamEnd::eof);
      EXPECT_EQ(got, kFullLine);
      ++told;
    }
  EXPECT_EQ(served, kCap);
  EXPECT_EQ(told, total - kCap);
  EXPECT_EQ(service_.live(), kCap);
}

INSTANTIATE_TEST_SUITE_P(Models, ExactCapTest,
                         ::testing::Values(Setup{Model::reactor, true},
                                           Setup{Model::threads, false}),
                         setup_name);

// With --proxy-protocol the address that counts is the one in the header, not the proxy's.
class ProxyAdmissionTest : public AdmissionTest {};

TEST_P(ProxyAdmissionTest, CountsTheHeadersAddress) {
  ServerOptions options;
  options.max_connections_per_ip = 1;
  options.stream.factory = proxy_stream_factory(ProxyPolicy{});
  start(std::move(options));
  Fd a = connect_to(endpoint_);
  ASSERT_TRUE(write_all(a.get(), "PROXY TCP4 192.0.2.1 127.0.0.1 5000 7000\r\n"));
  EXPECT_EQ(round_trip(a.get(), "a"), "a");
  refused(kPerIpLine, "PROXY TCP4 192.0.2.1 127.0.0.1 5001 7000\r\n");
  Fd b = connect_to(endpoint_);  // from the same socket address, but another client
  ASSERT_TRUE(write_all(b.get(), "PROXY TCP6 2001:db8::1 ::1 5000 7000\r\n"));
  EXPECT_EQ(round_trip(b.get(), "b"), "b");
  EXPECT_EQ(engine_->stats().rejected_per_ip, 1u);
}

INSTANTIATE_TEST_SUITE_P(Models, ProxyAdmissionTest,
                         ::testing::Values(Setup{Model::reactor, false},
                                           Setup{Model::threads, false}),
                         setup_name);

}  // namespace
}  // namespace keel::test
