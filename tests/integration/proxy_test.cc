// The PROXY protocol stage in front of a real echo server, under the reactor and the threads
// engine: the header's client address is the connection's peer everywhere (on_open, visit, the
// admin list and send-by-address), headers split across writes work, nothing after the header
// is lost, and garbage, oversize, slow and not-allowed headers are closed before the service
// hears of them while other clients carry on.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_server.h"
#include "integration/admin_fixture.h"
#include "integration/echo_fixture.h"
#include "integration/recording_service.h"
#include "keel/net/cidr.h"
#include "keel/net/proxy_stage.h"
#include "keel/net/socket.h"
#include "keel/net/tls.h"
#include "proxy_headers.h"
#include "test_util.h"
#include "tls_util.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

const std::string kV1Tcp4 = "PROXY TCP4 203.0.113.7 192.0.2.1 4242 7000\r\n";

// Echo that also records the peer each connection opened with.
class PeerRecordingService : public RecordingService {
 public:
  void on_open(Server& server, const ConnectionInfo& info) override {
    {
      std::lock_guard lock(mutex_);
      peers_.push_back(info.peer.to_string());
    }
    RecordingService::on_open(server, info);
  }
  std::vector<std::string> peers() const {
    std::lock_guard lock(mutex_);
    return peers_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> peers_;
};

// What StreamOptions::on_open_failed reported (it runs on connection threads).
class OpenFailures {
 public:
  void add(const Endpoint& peer, const std::string& reason) {
    std::lock_guard lock(mutex_);
    list_.push_back({peer.to_string(), reason});
  }
  struct Failure {
    std::string peer, reason;
  };
  std::vector<Failure> list() const {
    std::lock_guard lock(mutex_);
    return list_;
  }
  // Waits for the n-th failure; empty when none came in time.
  Failure wait_for(size_t n) const {
    eventually([&] { return list().size() >= n; });
    auto all = list();
    return all.size() >= n ? all[n - 1] : Failure{};
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Failure> list_;
};

std::string local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).to_string();
}

// An echo server (the reactor unless a test picks a model) with the PROXY stage in front.
class ProxyServerTest : public EchoServerTest {
 protected:
  void start_proxy(ProxyPolicy policy = {}, std::chrono::milliseconds open_timeout = 10s,
                   const char* listen = "127.0.0.1:0") {
    ServerOptions o;
    o.listen.push_back(Endpoint::parse(listen));
    o.stream.factory = proxy_stream_factory(std::move(policy));
    o.stream.open_timeout = open_timeout;
    o.stream.on_open_failed = [this](const Endpoint& peer, const std::string& reason) {
      failures_.add(peer, reason);
    };
    start(std::move(o), 2, &service_);
  }

  // A client that has sent its header (and maybe more) in one write.
  Fd client_sending(std::string_view bytes) {
    Fd fd = connect_client();
    EXPECT_TRUE(write_all(fd.get(), bytes));
    return fd;
  }

  std::vector<std::string> visited_peers() {
    std::vector<std::string> out;
    engine().visit([&](const ClientSnapshot& c) { out.push_back(c.peer.to_string()); });
    return out;
  }

  // The client is closed by the server (EOF, or a reset for unread bytes), not left waiting.
  static void expect_closed(int fd) {
    StreamEnd end = read_until_end(fd, nullptr, 5s);
    EXPECT_TRUE(end == StreamEnd::eof || end == StreamEnd::reset) << to_string(end);
  }

  PeerRecordingService service_;
  OpenFailures failures_;
};

class ProxyTest : public ProxyServerTest, public ::testing::WithParamInterface<Model> {
 protected:
  void SetUp() override { model_ = GetParam(); }
};

TEST_P(ProxyTest, V1AddressIsThePeerInOnOpenAndVisit) {
  start_proxy();
  Fd c = client_sending(kV1Tcp4);
  EXPECT_EQ(round_trip(c.get(), "hello"), "hello");
  EXPECT_EQ(service_.peers(), std::vector<std::string>{"203.0.113.7:4242"});
  EXPECT_EQ(visited_peers(), std::vector<std::string>{"203.0.113.7:4242"});
}

TEST_P(ProxyTest, V2AddressIsThePeerAndBytesAfterTheHeaderArrive) {
  start_proxy();
  // Header and a sizeable payload in one write: nothing past the header may be lost.
  std::string payload = pattern_bytes(256 * 1024, 7);
  std::string header = proxy_v2_tcp4("198.51.100.9", 61000, "192.0.2.1", 7000,
                                     proxy_tlv(0x05, "unique-id") + proxy_tlv(0x01, "h2"));
  Fd c = connect_client();
  std::string got;
  std::thread reader([&] { got = read_exactly(c.get(), payload.size()); });
  EXPECT_TRUE(write_all(c.get(), header + payload));
  reader.join();
  EXPECT_EQ(describe_difference(got, payload), "equal");
  EXPECT_EQ(service_.peers(), std::vector<std::string>{"198.51.100.9:61000"});
  EXPECT_EQ(visited_peers(), std::vector<std::string>{"198.51.100.9:61000"});
}

TEST_P(ProxyTest, HeaderSplitAcrossWritesWorks) {
  start_proxy();
  std::string v2 = proxy_v2_tcp6("2001:db8::7", 4242, "2001:db8::1", 443);
  for (const std::string& header : {kV1Tcp4, v2}) {
    Fd c = connect_client();
    int one = 1;
    ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Pieces of 1 to 5 bytes with a pause between them, so the server sees many short reads.
    for (size_t at = 0, step = 1; at < header.size(); at += step, step = step % 5 + 1) {
      ASSERT_TRUE(write_all(c.get(), std::string_view(header).substr(at, step)));
      std::this_thread::sleep_for(2ms);
    }
    EXPECT_EQ(round_trip(c.get(), "after the header"), "after the header");
  }
  EXPECT_EQ(service_.peers(), (std::vector<std::string>{"203.0.113.7:4242", "[2001:db8::7]:4242"}));
  EXPECT_TRUE(failures_.list().empty());
}

TEST_P(ProxyTest, LocalAndUnknownKeepTheSocketPeer) {
  start_proxy();
  Fd local = client_sending(proxy_v2_local());
  EXPECT_EQ(round_trip(local.get(), "a"), "a");
  Fd unknown = client_sending("PROXY UNKNOWN\r\n");
  EXPECT_EQ(round_trip(unknown.get(), "b"), "b");
  Fd unnamed = client_sending(proxy_v2_unix("", "/run/lb.sock"));
  EXPECT_EQ(round_trip(unnamed.get(), "c"), "c");
  EXPECT_EQ(service_.peers(),
            (std::vector<std::string>{local_address(local.get()), local_address(unknown.get()),
                                      local_address(unnamed.get())}));
}

TEST_P(ProxyTest, UnixFamilyClaimsTheClientPath) {
  start_proxy();
  Fd c = client_sending(proxy_v2_unix("/run/client.sock", "/run/lb.sock"));
  EXPECT_EQ(round_trip(c.get(), "x"), "x");
  EXPECT_EQ(service_.peers(), std::vector<std::string>{"unix:/run/client.sock"});
}

TEST_P(ProxyTest, Ipv6ListenerAndHeaders) {
  start_proxy(ProxyPolicy{{Cidr::parse("::1/128")}}, 10s, "[::1]:0");
  Fd v1 = client_sending("PROXY TCP6 2001:db8::7 ::1 4242 7000\r\n");
  EXPECT_EQ(round_trip(v1.get(), "one"), "one");
  Fd v2 = client_sending(proxy_v2_tcp4("203.0.113.7", 4242, "192.0.2.1", 7000));
  EXPECT_EQ(round_trip(v2.get(), "two"), "two");
  EXPECT_EQ(service_.peers(), (std::vector<std::string>{"[2001:db8::7]:4242", "203.0.113.7:4242"}));
}

TEST_P(ProxyTest, GarbageIsClosedBeforeTheServiceAndOthersCarryOn) {
  start_proxy();
  Fd good = client_sending(kV1Tcp4);
  EXPECT_EQ(round_trip(good.get(), "first"), "first");

  Fd http = client_sending("GET / HTTP/1.1\r\nHost: example\r\n\r\n");
  expect_closed(http.get());
  OpenFailures::Failure f = failures_.wait_for(1);
  EXPECT_EQ(f.peer, local_address(http.get()));
  EXPECT_NE(f.reason.find("not a PROXY protocol header"), std::string::npos) << f.reason;
  EXPECT_NE(f.reason.find("GET / HTTP"), std::string::npos) << f.reason;

  Fd bad_v1 = client_sending("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nhello");
  expect_closed(bad_v1.get());
  EXPECT_NE(failures_.wait_for(2).reason.find("bad port"), std::string::npos);

  EXPECT_EQ(round_trip(good.get(), "still here"), "still here");
  Fd later = client_sending(kV1Tcp4);
  EXPECT_EQ(round_trip(later.get(), "later"), "later");
  EXPECT_EQ(service_.opened().size(), 2u);  // the service never heard of the bad ones
  EXPECT_EQ(visited_peers().size(), 2u);
}

TEST_P(ProxyTest, OversizeHeadersAreClosed) {
  start_proxy();
  Fd v1 = client_sending("PROXY UNKNOWN " + std::string(200, 'f'));
  expect_closed(v1.get());
  EXPECT_NE(failures_.wait_for(1).reason.find("over 107 bytes"), std::string::npos);

  std::string v2 = proxy_v2_tcp4("203.0.113.7", 1, "192.0.2.1", 2);
  v2[14] = '\xff';
  v2[15] = '\xff';
  Fd big = client_sending(v2);
  expect_closed(big.get());
  EXPECT_NE(failures_.wait_for(2).reason.find("v2 length 65535 over limit"), std::string::npos);
  EXPECT_TRUE(service_.opened().empty());
}

TEST_P(ProxyTest, SlowHeaderIsClosedByTheOpenTimeout) {
  start_proxy({}, 200ms);
  auto began = std::chrono::steady_clock::now();
  Fd slow = client_sending("PROXY TCP4 203.0");
  Fd good = client_sending(kV1Tcp4);
  EXPECT_EQ(round_trip(good.get(), "meanwhile"), "meanwhile");
  expect_closed(slow.get());
  EXPECT_GE(std::chrono::steady_clock::now() - began, 150ms);
  OpenFailures::Failure f = failures_.wait_for(1);
  EXPECT_EQ(f.peer, local_address(slow.get()));
  EXPECT_NE(f.reason.find("took over 200 ms"), std::string::npos) << f.reason;
  EXPECT_EQ(round_trip(good.get(), "after"), "after");
}

TEST_P(ProxyTest, PeerClosingMidHeaderIsLogged) {
  start_proxy();
  Fd c = client_sending("PROX");
  ::shutdown(c.get(), SHUT_WR);
  expect_closed(c.get());
  OpenFailures::Failure f = failures_.wait_for(1);
  EXPECT_NE(f.reason.find("peer closed after 4 bytes"), std::string::npos) << f.reason;
}

TEST_P(ProxyTest, AllowListRefusesOtherPeers) {
  start_proxy(ProxyPolicy{{Cidr::parse("10.0.0.0/8"), Cidr::parse("::1/128")}});
  Fd c = client_sending(kV1Tcp4 + "hello");
  expect_closed(c.get());
  OpenFailures::Failure f = failures_.wait_for(1);
  EXPECT_EQ(f.peer, local_address(c.get()));
  EXPECT_NE(f.reason.find("peer " + local_address(c.get()) + " may not send one"),
            std::string::npos)
      << f.reason;
  EXPECT_NE(f.reason.find("10.0.0.0/8, ::1/128"), std::string::npos) << f.reason;
  EXPECT_TRUE(service_.opened().empty());
}

TEST_P(ProxyTest, AllowListAdmitsItsPeers) {
  start_proxy(ProxyPolicy{{Cidr::parse("10.0.0.0/8"), Cidr::parse("127.0.0.0/8")}});
  Fd c = client_sending(kV1Tcp4);
  EXPECT_EQ(round_trip(c.get(), "in"), "in");
  EXPECT_EQ(service_.peers(), std::vector<std::string>{"203.0.113.7:4242"});
}

// HAProxy passing TLS through in mode tcp: the header in the clear, then the handshake.
TEST_P(ProxyTest, TlsFollowsTheHeader) {
  TestCertificate cert;
  ASSERT_TRUE(cert.ok());
  ServerOptions o;
  o.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  o.stream.factory =
      proxy_stream_factory({}, TlsContext::factory(TlsContext::server({cert.cert(), cert.key()})));
  start(std::move(o), 2, &service_);

  TlsTestClient c(endpoint(), cert.cert(), 10s, kV1Tcp4);
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.write_all("secret"));
  EXPECT_EQ(c.read_exactly(6), "secret");
  EXPECT_EQ(service_.peers(), std::vector<std::string>{"203.0.113.7:4242"});
  std::vector<std::string> transports;
  engine().visit([&](const ClientSnapshot& s) { transports.push_back(s.transport); });
  ASSERT_EQ(transports.size(), 1u);
  EXPECT_EQ(transports[0], c.transport());  // the TLS stream carries the data after the header
}

TEST_P(ProxyTest, AdminListAndSendByAddressUseTheClaimedPeer) {
  start_proxy();
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  AdminOptions admin_options;
  admin_options.endpoint = Endpoint::parse("unix:" + dir.path() + "/admin.sock");
  AdminServer admin(admin_options, {&engine()});
  admin.start();

  Fd c = client_sending(proxy_v2_tcp4("203.0.113.7", 4242, "192.0.2.1", 7000));
  EXPECT_EQ(round_trip(c.get(), "hi"), "hi");
  LineClient ctl(connect_to(admin.endpoint()));
  Json list = ctl.request({{"cmd", "list"}});
  ASSERT_TRUE(list.contains("clients")) << list.dump();
  ASSERT_EQ(list["clients"].size(), 1u) << list.dump();
  EXPECT_EQ(list["clients"][0].value("peer", ""), "203.0.113.7:4242") << list.dump();

  Json sent = ctl.request({{"cmd", "send"}, {"to", "203.0.113.7:4242"}, {"text", "from ops"}});
  EXPECT_EQ(sent.value("ok", false), true) << sent.dump();
  EXPECT_EQ(read_exactly(c.get(), 9), "from ops\n");
  admin.stop();
}

INSTANTIATE_TEST_SUITE_P(Models, ProxyTest, ::testing::ValuesIn(in_process_models()), model_name);

// HAProxy's health checks connect, send a header and reset the connection at once, often before
// the server has accepted it; getpeername() then fails, but the address accept4 reports does
// not, and the allow list is checked against it. The reactor's loops are held still so the
// reset surely comes first.
TEST_F(ProxyServerTest, PeerResetBeforeAcceptStillHasItsAddress) {
  start_proxy(ProxyPolicy{{Cidr::parse("127.0.0.1/32")}});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<size_t> held{0};
  for (size_t i = 0; i < pool().size(); ++i)
    pool().loop(i).post([released, &held] {
      ++held;
      released.wait();
    });
  ASSERT_TRUE(eventually([&] { return held.load() == pool().size(); }));

  Fd c = connect_client();  // the kernel completes the handshake; nobody accepts yet
  std::string address = local_address(c.get());
  ASSERT_TRUE(write_all(c.get(), kV1Tcp4));
  linger reset{1, 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  c.reset();  // RST
  release.set_value();

  // The connection opens with the header's address (the data was queued before the reset) and
  // then closes; or, if the reset wins the race to the data, it fails naming the real peer.
  ASSERT_TRUE(eventually([&] { return !service_.closed().empty() || !failures_.list().empty(); }));
  for (const auto& f : failures_.list()) {
    EXPECT_EQ(f.peer, address) << f.reason;
    EXPECT_EQ(f.reason.find("may not send one"), std::string::npos) << f.reason;
  }
  if (failures_.list().empty()) {
    EXPECT_EQ(service_.peers(), std::vector<std::string>{"203.0.113.7:4242"});
  }
}

// The stage on its own, driven by hand over a loopback connection: each open() call sees what
// has arrived, so the split cases are exact, and what follows the header stays in the socket.
class ProxyStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Socket listener = Socket::listen_on(Endpoint::parse("127.0.0.1:0"), {});
    client_ = connect_to(listener.local_endpoint());
    ASSERT_TRUE(client_.valid());
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    server_ = Fd(::accept4(listener.fd(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK));
    ASSERT_TRUE(server_.valid());
    peer_ = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  void send(std::string_view bytes) {
    ASSERT_TRUE(write_all(client_.get(), bytes));
    // Until the bytes are in the server's receive queue (loopback delivers them at once, but
    // do not rely on it).
    ASSERT_TRUE(wait_ready(server_.get(), POLLIN, 5s));
  }
  // What the server socket still holds (without taking it).
  std::string queued() {
    char buf[4096];
    ssize_t n = ::recv(server_.get(), buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

  Fd client_, server_;
  Endpoint peer_;
};

// A data stream standing in for TLS: the stage must hand it over untouched.
class MarkerStream : public Stream {
 public:
  Step open(int, const Endpoint&) override { return Step::done; }
  ssize_t read(int, char*, size_t) override { return 0; }
  ssize_t write(int, const char*, size_t len) override { return static_cast<ssize_t>(len); }
  void shutdown_write(int) override {}
  std::string describe() const override { return "marker"; }
};

TEST_F(ProxyStageTest, TakesExactlyTheHeaderEvenWhenSplit) {
  auto next = std::make_unique<MarkerStream>();
  Stream* next_ptr = next.get();
  std::unique_ptr<Stream> stage = make_proxy_stage(nullptr, std::move(next));
  EXPECT_FALSE(stage->carries_data());
  EXPECT_EQ(stage->open(server_.get(), peer_), Stream::Step::want_read);  // nothing yet

  const std::string header = proxy_v2_tcp4("203.0.113.7", 4242, "192.0.2.1", 7000);
  send(header.substr(0, 5));
  EXPECT_EQ(stage->open(server_.get(), peer_), Stream::Step::want_read);
  EXPECT_EQ(queued(), "");  // an incomplete header is taken off the socket: no busy loop
  send(header.substr(5, 14));
  EXPECT_EQ(stage->open(server_.get(), peer_), Stream::Step::want_read);
  EXPECT_EQ(queued(), "");
  send(header.substr(19) + "\x16\x03\x01 client hello");
  ASSERT_EQ(stage->open(server_.get(), peer_), Stream::Step::done) << stage->error_detail();
  EXPECT_EQ(queued(), "\x16\x03\x01 client hello");  // left for the next stage
  ASSERT_TRUE(stage->claimed_peer());
  EXPECT_EQ(stage->claimed_peer()->to_string(), "203.0.113.7:4242");
  EXPECT_EQ(stage->take_next().get(), next_ptr);
}

TEST_F(ProxyStageTest, V1LineFollowedByDataInOneSegment) {
  std::unique_ptr<Stream> stage = make_proxy_stage(nullptr);
  send(kV1Tcp4 + "PROXY TCP4 this is data, not a second header\r\n");
  ASSERT_EQ(stage->open(server_.get(), peer_), Stream::Step::done) << stage->error_detail();
  EXPECT_EQ(queued(), "PROXY TCP4 this is data, not a second header\r\n");
  EXPECT_EQ(stage->claimed_peer()->to_string(), "203.0.113.7:4242");
  EXPECT_EQ(stage->take_next(), nullptr);  // plain socket I/O follows
}

TEST_F(ProxyStageTest, LocalClaimsNothingAndRefusalsSayWhy) {
  std::unique_ptr<Stream> local = make_proxy_stage(nullptr);
  send(proxy_v2_local());
  EXPECT_EQ(local->open(server_.get(), peer_), Stream::Step::done);
  EXPECT_FALSE(local->claimed_peer());

  auto only_10 = std::make_shared<const ProxyPolicy>(ProxyPolicy{{Cidr::parse("10.0.0.0/8")}});
  std::unique_ptr<Stream> refused = make_proxy_stage(only_10);
  send(kV1Tcp4);
  EXPECT_EQ(refused->open(server_.get(), peer_), Stream::Step::failed);
  EXPECT_EQ(refused->error_detail(),
            "PROXY header: peer " + peer_.to_string() + " may not send one (allowed: 10.0.0.0/8)");
  EXPECT_EQ(queued(), kV1Tcp4);  // refused before a byte was read
}

}  // namespace
}  // namespace keel::test
