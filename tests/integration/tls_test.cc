// TLS on a server's listeners (TlsContext as the stream factory) under every model: byte-exact
// echo through the handshake, backpressure with a late reader, many clients at once, half-close
// mapped to close_notify, and bad peers (plain text, silence) closed without touching others.
#include "keel/net/tls.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "integration/echo_fixture.h"
#include "keel/net/tcp_client.h"
#include "tls_util.h"

namespace keel::test {
namespace {

class TlsEchoTest : public EchoEngineTest {
 protected:
  static void SetUpTestSuite() { cert_ = new TestCertificate(); }
  static void TearDownTestSuite() {
    delete cert_;
    cert_ = nullptr;
  }

  void start_tls(std::chrono::milliseconds open_timeout = std::chrono::seconds(10)) {
    ASSERT_TRUE(cert_->ok()) << "openssl could not make a test certificate";
    ServerOptions o;
    o.stream.factory = TlsContext::factory(TlsContext::server({cert_->cert(), cert_->key()}));
    o.stream.open_timeout = open_timeout;
    o.stream.on_open_failed = [this](const Endpoint&, const std::string& reason) {
      std::lock_guard lock(failures_mutex_);
      failures_.push_back(reason);
    };
    start(std::move(o));
  }

  std::vector<std::string> failures() {
    std::lock_guard lock(failures_mutex_);
    return failures_;
  }

  static TestCertificate* cert_;
  std::mutex failures_mutex_;
  std::vector<std::string> failures_;
};
TestCertificate* TlsEchoTest::cert_ = nullptr;

TEST_P(TlsEchoTest, EchoesThroughTheHandshake) {
  start_tls();
  TlsTestClient c(endpoint(), cert_->cert());
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c.transport().rfind("TLSv1.", 0), 0u) << c.transport();
  ASSERT_TRUE(c.write_all("hello over tls\n"));
  EXPECT_EQ(c.read_exactly(15), "hello over tls\n");
}

// 16 MiB sent before the client reads anything: the server must pause reading (backpressure)
// rather than buffer it all, then deliver every byte in order once the client reads.
TEST_P(TlsEchoTest, SixteenMiBByteExactWithALateReader) {
  start_tls();
  TlsTestClient c(endpoint(), cert_->cert());
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string payload = pattern_bytes(16u << 20, 7);
  size_t sent = c.write_some(payload);
  // Late reader: keep writing while the connection takes bytes; stop once both directions
  // are full (the server stopped reading, so nothing more goes in without a reader).
  for (int round = 0; round < 1000 && sent < payload.size(); ++round) {
    if (!wait_ready(c.fd(), POLLOUT, 200ms)) break;
    size_t more = c.write_some(std::string_view(payload).substr(sent));
    if (more == 0) break;
    sent += more;
  }
  ASSERT_LT(sent, payload.size()) << "the server took 16 MiB without backpressure";
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (got.size() < payload.size() && std::chrono::steady_clock::now() < deadline) {
    std::string chunk = c.read_some(256 * 1024, 100ms);
    got += chunk;
    if (sent < payload.size()) sent += c.write_some(std::string_view(payload).substr(sent));
    if (chunk.empty() && sent == payload.size() && !wait_ready(c.fd(), POLLIN, 5s)) break;
  }
  EXPECT_EQ(sent, payload.size());
  EXPECT_EQ(describe_difference(got, payload), "equal");
}

TEST_P(TlsEchoTest, HalfCloseIsCloseNotifyAndEverythingArrives) {
  start_tls();
  TlsTestClient c(endpoint(), cert_->cert());
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string payload = pattern_bytes(300000, 3);
  ASSERT_TRUE(c.write_all(payload));
  c.shutdown_write();  // close_notify + FIN: echo finishes its output, then ends its side
  std::string got;
  EXPECT_EQ(c.read_until_end(&got), StreamEnd::eof);
  EXPECT_EQ(describe_difference(got, payload), "equal");
}

TEST_P(TlsEchoTest, PlainTextClientIsClosedAndOthersCarryOn) {
  start_tls();
  TlsTestClient good(endpoint(), cert_->cert());
  ASSERT_TRUE(good.ok()) << good.error();
  Fd plain = connect_client();
  ASSERT_TRUE(write_all(plain.get(), "GET / HTTP/1.0\r\n\r\n"));
  std::string ignored;
  StreamEnd end = read_until_end(plain.get(), &ignored);
  EXPECT_TRUE(end == StreamEnd::eof || end == StreamEnd::reset) << to_string(end);
  if (GetParam() != Model::processes) {  // there the hook runs in the child
    ASSERT_TRUE(eventually([&] { return !failures().empty(); }));
    EXPECT_NE(failures().front().find("TLS handshake"), std::string::npos) << failures().front();
    EXPECT_EQ(engine().stats().open_failures, 1u);
  }
  ASSERT_TRUE(good.write_all("still here\n"));
  EXPECT_EQ(good.read_exactly(11), "still here\n");
}

TEST_P(TlsEchoTest, SilentClientIsClosedAtTheHandshakeTimeout) {
  start_tls(300ms);
  Fd silent = connect_client();
  auto began = std::chrono::steady_clock::now();
  EXPECT_NE(read_until_end(silent.get(), nullptr, 10s), StreamEnd::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s);
  if (GetParam() != Model::processes) {
    ASSERT_TRUE(eventually([&] { return !failures().empty(); }));
    EXPECT_NE(failures().front().find("timed out"), std::string::npos) << failures().front();
  }
  EXPECT_TRUE(eventually([&] { return engine().connection_count() == 0; }));
}

INSTANTIATE_TEST_SUITE_P(Models, TlsEchoTest, ::testing::ValuesIn(all_models()), model_name);

class TlsEngineTest : public TlsEchoTest {};

// The operator's view: the TLS version and cipher of each client; a handshake in progress is
// "connecting" and unknown to the service.
TEST_P(TlsEngineTest, SnapshotShowsTheTransport) {
  start_tls();
  TlsTestClient c(endpoint(), cert_->cert());
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.write_all("x"));
  ASSERT_EQ(c.read_exactly(1), "x");
  std::vector<ClientSnapshot> seen;
  engine().visit([&](const ClientSnapshot& s) { seen.push_back(s); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].transport, c.transport());
  EXPECT_EQ(seen[0].state, ConnectionState::open);
}

// Many clients at once on one client loop, each through its own handshake (TcpClient with a
// client TLS stream), every one echoed exactly.
TEST_P(TlsEngineTest, ThreeHundredConcurrentClients) {
  start_tls();
  constexpr size_t kClients = 300;
  EventLoop loop;
  std::shared_ptr<const TlsContext> client_tls =
      TlsContext::client({cert_->cert(), true, "localhost"});
  size_t echoed = 0, failed = 0;
  std::vector<std::string> received(kClients);
  ConnectionCallbacks cb;
  cb.on_open = [](TcpConnection& c) {
    c.send("client " + std::to_string(c.user_tag()) + " says hello\n");
  };
  std::vector<std::unique_ptr<TcpClient>> clients;
  cb.on_data = [&](TcpConnection& c, Buffer& in) {
    std::string& mine = received[c.user_tag()];
    mine += in.take_all();
    if (mine == "client " + std::to_string(c.user_tag()) + " says hello\n") {
      ++echoed;
      c.shutdown();
    }
  };
  cb.on_close = [&](TcpConnection&, const CloseReason&) {
    if (echoed + failed == kClients) loop.quit();
  };
  ClientOptions co;
  co.stream.factory = TlsContext::factory(client_tls);
  for (size_t i = 0; i < kClients; ++i) {
    ConnectionCallbacks mine = cb;
    mine.on_open = [i, open = cb.on_open](TcpConnection& c) {
      c.set_user_tag(i);
      open(c);
    };
    clients.push_back(
        std::make_unique<TcpClient>(loop, endpoint(), co, mine, [&](const CloseReason&, int, bool) {
          if (++failed + echoed == kClients) loop.quit();
        }));
  }
  loop.post([&] {
    for (auto& client : clients) client->connect();
  });
  TimerId guard = 0;
  loop.post([&] { guard = loop.run_after(60s, [&] { loop.quit(); }); });
  loop.run();
  (void)guard;
  EXPECT_EQ(echoed, kClients);
  EXPECT_EQ(failed, 0u);
  clients.clear();
}

INSTANTIATE_TEST_SUITE_P(Models, TlsEngineTest, ::testing::ValuesIn(in_process_models()),
                         model_name);

}  // namespace
}  // namespace keel::test
