// UdpServer / UdpSocket with real sockets on 127.0.0.1 and ::1, port 0: byte-exact echo of many
// datagrams, truncation detected and counted, send_to to several peers, stats, refusals.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/load.h"
#include "keel/error.h"
#include "keel/net/loop_pool.h"
#include "keel/net/socket.h"
#include "keel/net/tcp_client.h"
#include "keel/net/tcp_server.h"
#include "keel/net/udp_server.h"
#include "services/echo/datagram_echo_service.h"
#include "test_util.h"

namespace keel::test {
namespace {

// A blocking UDP client socket bound to the loopback address of the server's family.
class UdpPeer {
 public:
  explicit UdpPeer(const Endpoint& server) : server_(server) {
    Endpoint local = Endpoint::parse(server.is_ipv6() ? "udp:[::1]:0" : "udp:127.0.0.1:0");
    fd_ = Fd(::socket(local.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    int big = 4 << 20;  // room for every reply of a window, even when the test runs slowly
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (::bind(fd_.get(), local.sockaddr_ptr(), local.sockaddr_len()) != 0) std::abort();
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    address_ = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len,
                                       Endpoint::Transport::datagram);
  }

  bool send(std::string_view bytes) {
    return ::sendto(fd_.get(), bytes.data(), bytes.size(), 0, server_.sockaddr_ptr(),
                    server_.sockaddr_len()) == static_cast<ssize_t>(bytes.size());
  }

  // The next datagram, or nullopt when none arrives within timeout.
  std::optional<std::string> receive(std::chrono::milliseconds timeout = 5s) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    std::string buf(70000, '\0');
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

  const Endpoint& address() const { return address_; }

 private:
  Endpoint server_;
  Endpoint address_;
  Fd fd_;
};

// Records every datagram (peer and bytes); answers "all:TEXT" by sending TEXT to every peer it
// has heard from, in the same batch.
class RecordingDatagramService final : public DatagramService {
 public:
  const char* name() const noexcept override { return "recording"; }
  void on_datagram(DatagramSender& socket, const Endpoint& peer, std::string_view bytes) override {
    std::lock_guard lock(mutex_);
    received_.emplace_back(peer, std::string(bytes));
    if (std::find(peers_.begin(), peers_.end(), peer) == peers_.end()) peers_.push_back(peer);
    if (bytes.starts_with("all:"))
      for (const Endpoint& p : peers_) socket.send_to(p, bytes.substr(4));
    if (bytes == "too big") oversize_refused_ = !socket.send_to(peer, std::string(70000, 'x'));
  }
  std::vector<std::pair<Endpoint, std::string>> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  bool oversize_refused() {
    std::lock_guard lock(mutex_);
    return oversize_refused_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<Endpoint, std::string>> received_;
  std::vector<Endpoint> peers_;
  bool oversize_refused_ = false;
};

// A datagram that says which one it is: "#<seq>:" then a pattern of the given size.
std::string numbered(size_t seq, size_t size) {
  std::string s = "#" + std::to_string(seq) + ":";
  uint32_t x = static_cast<uint32_t>(seq) * 2654435761u;
  while (s.size() < size) {
    x = x * 1103515245 + 12345;
    s.push_back(static_cast<char>(x >> 16));
  }
  return s;
}

class UdpServerTest : public ::testing::TestWithParam<const char*> {
 protected:
  void start(UdpServerOptions options = {}, DatagramService* service = nullptr, size_t loops = 1) {
    pool_ = std::make_unique<LoopPool>(loops);
    if (options.listen.empty()) options.listen.push_back(Endpoint::parse(GetParam()));
    server_ = std::make_unique<UdpServer>(*pool_, options, service ? *service : echo_);
    server_->start();
    pool_->start();
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (pool_) pool_->stop();
  }
  UdpServer& server() { return *server_; }
  const Endpoint& endpoint() { return server_->endpoints().at(0); }

  DatagramEchoService echo_;
  std::unique_ptr<LoopPool> pool_;
  std::unique_ptr<UdpServer> server_;
};

TEST_P(UdpServerTest, BindsPortZeroAndReportsTheChosenPort) {
  start();
  EXPECT_TRUE(endpoint().is_udp());
  EXPECT_NE(endpoint().port(), 0);
  EXPECT_EQ(endpoint().is_ipv6(), Endpoint::parse(GetParam()).is_ipv6());
  EXPECT_TRUE(endpoint().to_string().starts_with("udp:")) << endpoint().to_string();
}

TEST_P(UdpServerTest, EchoesManyDatagramsByteExact) {
  start();
  UdpPeer peer(endpoint());
  constexpr size_t kDatagrams = 2000;
  constexpr size_t kWindow = 32;  // in flight at once, so no socket buffer can overflow
  std::map<std::string, size_t> expected;
  size_t sent_bytes = 0, received = 0;
  for (size_t seq = 0; seq < kDatagrams; ++seq) {
    // Sizes from tiny to the largest UDP payload of the family.
    size_t size = seq % 100 == 99 ? (endpoint().is_ipv6() ? 65527 : 65507) : 16 + (seq * 37) % 1400;
    std::string d = numbered(seq, size);
    ASSERT_TRUE(peer.send(d)) << "datagram " << seq << " (" << size << " B)";
    sent_bytes += d.size();
    ++expected[d];
    if ((seq + 1) % kWindow == 0 || seq + 1 == kDatagrams) {
      while (received < seq + 1) {
        auto reply = peer.receive();
        ASSERT_TRUE(reply) << "no reply after " << received << " of " << seq + 1;
        auto it = expected.find(*reply);
        ASSERT_NE(it, expected.end()) << "a reply that was never sent (" << reply->size() << " B)";
        if (--it->second == 0) expected.erase(it);
        ++received;
      }
    }
  }
  EXPECT_TRUE(expected.empty());
  EXPECT_FALSE(peer.receive(20ms)) << "more replies than datagrams";
  ASSERT_TRUE(eventually([&] { return server().stats().datagrams_out == kDatagrams; }));
  UdpStats s = server().stats();
  EXPECT_EQ(s.datagrams_in, kDatagrams);
  EXPECT_EQ(s.bytes_in, sent_bytes);
  EXPECT_EQ(s.bytes_out, sent_bytes);
  EXPECT_EQ(s.truncated, 0u);
  EXPECT_EQ(s.send_errors + s.send_dropped + s.receive_errors, 0u);
}

TEST_P(UdpServerTest, EmptyDatagramIsADatagram) {
  start();
  UdpPeer peer(endpoint());
  ASSERT_TRUE(peer.send(""));
  auto reply = peer.receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply, "");
  EXPECT_EQ(server().stats().datagrams_in, 1u);
}

TEST_P(UdpServerTest, TruncatedDatagramIsCountedAndNeverDelivered) {
  RecordingDatagramService service;
  UdpServerOptions o;
  o.socket.max_datagram_bytes = 1024;
  start(o, &service);
  UdpPeer peer(endpoint());
  std::string fits = numbered(1, 1024);  // exactly the receive size: whole
  std::string over = numbered(2, 1025);
  std::string huge = numbered(3, 9000);
  std::string small = numbered(4, 10);
  for (const std::string* d : {&over, &fits, &huge, &small}) ASSERT_TRUE(peer.send(*d));
  ASSERT_TRUE(eventually([&] {
    UdpStats s = server().stats();
    return s.datagrams_in + s.truncated == 4;
  }));
  UdpStats s = server().stats();
  EXPECT_EQ(s.truncated, 2u);
  EXPECT_EQ(s.datagrams_in, 2u);
  EXPECT_EQ(s.bytes_in, fits.size() + small.size());
  auto got = service.received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].second, fits);
  EXPECT_EQ(got[1].second, small);
  EXPECT_TRUE(got[0].first == peer.address()) << got[0].first.to_string();
}

TEST_P(UdpServerTest, RepliesToSeveralPeersFromTheServiceAndFromAnyThread) {
  RecordingDatagramService service;
  start({}, &service);
  std::vector<std::unique_ptr<UdpPeer>> peers;
  for (int i = 0; i < 3; ++i) {
    peers.push_back(std::make_unique<UdpPeer>(endpoint()));
    ASSERT_TRUE(peers.back()->send("hello " + std::to_string(i)));
  }
  ASSERT_TRUE(eventually([&] { return service.received().size() == 3; }));
  // From the service, inside on_datagram: one batch of replies, one to each peer.
  ASSERT_TRUE(peers[0]->send("all:news"));
  for (auto& p : peers) {
    auto got = p->receive();
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, "news");
  }
  // From this thread, by peer address: each gets its own.
  std::vector<Endpoint> heard(3);
  for (const auto& [from, bytes] : service.received())
    if (bytes.starts_with("hello ")) heard.at(std::stoi(bytes.substr(6))) = from;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(heard[i] == peers[i]->address()) << heard[i].to_string();
    EXPECT_TRUE(server().send_to(heard[i], "just for " + std::to_string(i)));
  }
  for (int i = 0; i < 3; ++i) {
    auto got = peers[i]->receive();
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, "just for " + std::to_string(i));
    EXPECT_FALSE(peers[i]->receive(20ms)) << "peer " << i << " got someone else's datagram";
  }
  EXPECT_FALSE(server().send_to(heard[0], "x", 1)) << "no second endpoint";
  EXPECT_FALSE(server().send_to(heard[0], std::string(70000, 'x')));
  ASSERT_TRUE(eventually([&] { return server().stats().datagrams_out == 6; }));
}

TEST_P(UdpServerTest, OversizeSendIsRefusedAndCounted) {
  RecordingDatagramService service;
  start({}, &service);
  UdpPeer peer(endpoint());
  ASSERT_TRUE(peer.send("too big"));
  ASSERT_TRUE(eventually([&] { return server().stats().send_errors == 1; }));
  EXPECT_TRUE(service.oversize_refused());
  EXPECT_EQ(server().stats().datagrams_out, 0u);
}

// A service that answers each datagram with a flood to a peer that never reads.
class FloodService final : public DatagramService {
 public:
  explicit FloodService(Endpoint target) : target_(std::move(target)) {}
  const char* name() const noexcept override { return "flood"; }
  void on_datagram(DatagramSender& socket, const Endpoint&, std::string_view) override {
    for (int i = 0; i < kFlood; ++i) socket.send_to(target_, std::string(60000, 'f'));
    done_.store(true);
  }
  static constexpr int kFlood = 500;
  std::atomic<bool> done_{false};

 private:
  Endpoint target_;
};

TEST_P(UdpServerTest, SendingNeverBlocksAndEveryDatagramIsAccountedFor) {
  Endpoint any = Endpoint::parse(GetParam());
  UdpPeer sink(any);  // never reads: its receive buffer fills, then the kernel drops
  FloodService service(sink.address());
  UdpServerOptions o;
  o.socket.send_buffer_bytes = 4096;
  start(o, &service);
  UdpPeer trigger(endpoint());
  ASSERT_TRUE(trigger.send("go"));
  ASSERT_TRUE(eventually([&] { return service.done_.load(); }));
  ASSERT_TRUE(eventually([&] {
    UdpStats s = server().stats();
    return s.datagrams_out + s.send_dropped + s.send_errors == FloodService::kFlood;
  })) << server().stats().datagrams_out
      << " out, " << server().stats().send_dropped << " dropped";
}

TEST_P(UdpServerTest, SocketPerLoopSharesOnePort) {
  UdpServerOptions o;
  o.socket_per_loop = true;
  start(o, nullptr, 2);
  std::vector<std::unique_ptr<UdpPeer>> peers;
  for (int i = 0; i < 8; ++i) peers.push_back(std::make_unique<UdpPeer>(endpoint()));
  for (int round = 0; round < 10; ++round)
    for (size_t i = 0; i < peers.size(); ++i) {
      std::string d = numbered(round * 100 + i, 200);
      ASSERT_TRUE(peers[i]->send(d));
      auto got = peers[i]->receive();
      ASSERT_TRUE(got);
      EXPECT_EQ(*got, d);
    }
  EXPECT_EQ(server().stats().datagrams_in, 80u);
}

TEST_P(UdpServerTest, StopReleasesThePortAndRefusesSends) {
  start();
  Endpoint bound = endpoint();
  UdpPeer peer(bound);
  ASSERT_TRUE(peer.send("ping"));
  ASSERT_TRUE(peer.receive());
  server().stop();
  EXPECT_FALSE(server().send_to(peer.address(), "late"));
  DatagramEchoService echo;
  LoopPool other(1);
  UdpServerOptions again;
  again.listen.push_back(bound);
  UdpServer second(other, again, echo);
  EXPECT_NO_THROW(second.start()) << "the port should be free after stop()";
}

TEST_P(UdpServerTest, PortInUseNamesTheEndpoint) {
  start();
  LoopPool other(1);
  UdpServerOptions o;
  o.listen.push_back(endpoint());
  DatagramEchoService echo;
  UdpServer second(other, o, echo);
  try {
    second.start();
    FAIL() << "bound the same UDP port twice";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "bind " + endpoint().to_string() + ": Address already in use");
  }
}

INSTANTIATE_TEST_SUITE_P(Loopback, UdpServerTest,
                         ::testing::Values("udp:127.0.0.1:0", "udp:[::1]:0"),
                         [](const auto& info) { return info.index == 0 ? "IPv4" : "IPv6"; });

// Drops every `nth` datagram; echoes the rest.
class LossyEchoService final : public DatagramService {
 public:
  explicit LossyEchoService(uint64_t nth) : nth_(nth) {}
  const char* name() const noexcept override { return "lossy echo"; }
  void on_datagram(DatagramSender& socket, const Endpoint& peer, std::string_view bytes) override {
    if (++seen_ % nth_ == 0) {
      dropped_.fetch_add(1);
      return;
    }
    socket.send_to(peer, bytes);
  }
  std::atomic<uint64_t> dropped_{0};

 private:
  const uint64_t nth_;
  uint64_t seen_ = 0;  // one socket, one loop thread
};

TEST(UdpBench, PingpongCountsLossAndALossDoesNotStallTheRun) {
  LossyEchoService lossy(10);
  LoopPool pool(1);
  UdpServerOptions o;
  o.listen.push_back(Endpoint::parse("udp:127.0.0.1:0"));
  UdpServer server(pool, o, lossy);
  server.start();
  pool.start();
  bench::PingpongOptions po;
  po.target = server.endpoints()[0];
  po.conns = 2;
  po.size = 100;
  po.duration_s = 0.5;
  po.reply_timeout_s = 0.05;
  bench::PingpongResult r = bench::run_pingpong(po);
  EXPECT_GT(r.lost, 0u);
  EXPECT_EQ(r.sent, r.messages + r.lost);
  EXPECT_LE(r.lost, lossy.dropped_.load());
  // Each loss holds one socket for 50 ms; the run goes on: 9 of 10 get their reply.
  EXPECT_GT(r.messages, 8 * r.lost);
  EXPECT_EQ(r.latency_ns.count(), r.messages);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(r.connected, 2u);
  server.stop();
  pool.stop();
}

TEST(UdpBench, PingpongRefusesSizesThatCannotCarryASequenceNumber) {
  bench::PingpongOptions po;
  po.target = Endpoint::parse("udp:127.0.0.1:9");
  po.size = 7;
  EXPECT_THROW(bench::run_pingpong(po), Error);
  po.size = 65508;
  EXPECT_THROW(bench::run_pingpong(po), Error);
}

TEST(UdpRefusals, StreamClassesRefuseUdpEndpointsAndUdpServerRefusesTcpOnes) {
  LoopPool pool(1);
  DatagramEchoService echo;
  UdpServerOptions uo;
  uo.listen.push_back(Endpoint::parse("127.0.0.1:0"));
  UdpServer udp(pool, uo, echo);
  EXPECT_THROW(udp.start(), Error);

  ServerOptions to;
  to.listen.push_back(Endpoint::parse("udp:127.0.0.1:0"));
  TcpServer tcp(pool, to, ConnectionCallbacks{});
  try {
    tcp.start();
    ADD_FAILURE() << "TcpServer listened on a udp: endpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("listen udp:127.0.0.1:0: a UDP endpoint"),
              std::string::npos)
        << e.what();
  }
  try {
    TcpClient client(pool.loop(0), Endpoint::parse("udp:127.0.0.1:9"), ClientOptions{},
                     ConnectionCallbacks{});
    ADD_FAILURE() << "TcpClient accepted a udp: endpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("connect udp:127.0.0.1:9: a UDP endpoint"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace keel::test
