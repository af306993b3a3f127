// HAProxy (the Debian package) in front of two `keel echo --proxy-protocol` backends, all on
// loopback and started by the test: HAProxy sends PROXY v2 headers (with a unique-id TLV) to
// the backends, checks their health every 200 ms, and the test checks byte-exact echo and
// half-close through it, that each backend's `keel ctl list --json` shows the client's own
// address and port, and that new clients move to the other backend when one is killed.
#include "e2e/haproxy.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "e2e/subprocess.h"
#include "test_util.h"

namespace keel::test {
namespace {

using Json = nlohmann::json;
const std::string kKeel = KEEL_BINARY;

// One keel echo backend that requires the PROXY header from 127.0.0.1 (HAProxy).
struct Backend {
  std::string admin;
  std::unique_ptr<Subprocess> process;
  int port = 0;
};

// The peers `keel ctl list --json` shows for a backend (empty when ctl fails).
std::vector<std::string> listed_peers(const std::string& admin) {
  Subprocess ctl({kKeel, "ctl", "--admin", admin, "--json", "list"});
  std::vector<std::string> peers;
  if (ctl.wait() != 0) return peers;
  Json reply = Json::parse(ctl.out(), nullptr, false);
  if (!reply.is_object()) return peers;
  for (const Json& c : reply.value("clients", Json::array())) peers.push_back(c.value("peer", ""));
  return peers;
}

// Connections the backend has accepted (`keel ctl stats --json`), or -1.
int64_t accepted(const std::string& admin) {
  Subprocess ctl({kKeel, "ctl", "--admin", admin, "--json", "stats"});
  if (ctl.wait() != 0) return -1;
  Json reply = Json::parse(ctl.out(), nullptr, false);
  if (!reply.is_object() || reply.value("services", Json::array()).empty()) return -1;
  return reply["services"][0].value("accepted", int64_t{-1});
}

class HaproxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Haproxy::binary().empty())
        << "haproxy not found: scripts/install-deps.sh installs it";
    ASSERT_FALSE(dir_.path().empty());
    for (int i = 0; i < 2; ++i) {
      Backend b;
      b.admin = "unix:" + dir_.path() + "/admin" + std::to_string(i) + ".sock";
      b.process = std::make_unique<Subprocess>(
          std::vector<std::string>{kKeel, "echo", "--proxy-protocol", "--proxy-allow",
                                   "127.0.0.1/32", "--listen", "127.0.0.1:0", "--admin", b.admin});
      std::optional<int> port = logged_port(*b.process);
      ASSERT_TRUE(port) << b.process->err();
      ASSERT_TRUE(b.process->wait_for_stderr("admin listening")) << b.process->err();
      b.port = *port;
      backends_.push_back(std::move(b));
    }
    start_haproxy();
  }

  void start_haproxy() {
    ASSERT_TRUE(haproxy_.start(
        dir_.path(), [&](int port) { return haproxy_config(port); },
        [](const Endpoint& frontend) {
          Fd c = connect_to(frontend);
          return c.valid() && round_trip(c.get(), "ping\n", 2s) == "ping\n";
        }))
        << "haproxy did not start";
  }

  // The config an operator would write (docs/operations.md shows the same), on test ports.
  std::string haproxy_config(int port) const {
    std::string servers;
    for (size_t i = 0; i < backends_.size(); ++i)
      servers += "    server keel" + std::to_string(i) +
                 " 127.0.0.1:" + std::to_string(backends_[i].port) +
                 " send-proxy-v2 proxy-v2-options unique-id check inter 200ms fall 1 rise 1\n";
    return "global\n"
           "    maxconn 1000\n"
           "defaults\n"
           "    mode tcp\n"
           "    timeout connect 2s\n"
           "    timeout client 30s\n"
           "    timeout server 30s\n"
           "    retries 2\n"
           "    option redispatch\n"
           "frontend echo\n"
           "    bind 127.0.0.1:" +
           std::to_string(port) +
           "\n"
           "    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt\n"
           "    default_backend keel\n"
           "backend keel\n"
           "    balance roundrobin\n" +
           servers;
  }

  Endpoint frontend() const { return haproxy_.frontend(); }

  TempDir dir_;  // first: removed after the processes using it are gone
  std::vector<Backend> backends_;
  Haproxy haproxy_;
};

TEST_F(HaproxyTest, EchoIsByteExactAndHalfCloseReachesTheClient) {
  Fd c = connect_to(frontend());
  ASSERT_TRUE(c.valid());
  const std::string payload = pattern_bytes(4 << 20, 42);
  bool written = false;
  std::thread writer([&] {
    written = write_all(c.get(), payload, 20s);
    ::shutdown(c.get(), SHUT_WR);  // half-close: the echo must still come back in full
  });
  std::string got;
  StreamEnd end = read_until_end(c.get(), &got, 20s);
  writer.join();
  EXPECT_TRUE(written);
  EXPECT_EQ(to_string(end), std::string("eof"));
  EXPECT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload) << "echo differs from what was sent";
}

TEST_F(HaproxyTest, EachBackendListsTheClientsOwnAddressAndPort) {
  // Round robin: two clients in a row land on different backends.
  Fd a = connect_to(frontend());
  Fd b = connect_to(frontend());
  ASSERT_TRUE(a.valid() && b.valid());
  EXPECT_EQ(round_trip(a.get(), "a\n"), "a\n");
  EXPECT_EQ(round_trip(b.get(), "b\n"), "b\n");
  const std::string addr_a = local_address(a.get()), addr_b = local_address(b.get());
  ASSERT_TRUE(addr_a.starts_with("127.0.0.1:")) << addr_a;

  std::vector<std::string> peers0 = listed_peers(backends_[0].admin);
  std::vector<std::string> peers1 = listed_peers(backends_[1].admin);
  auto has = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  // Each client is listed, by its own address and port, on exactly one backend.
  EXPECT_NE(has(peers0, addr_a), has(peers1, addr_a)) << addr_a;
  EXPECT_NE(has(peers0, addr_b), has(peers1, addr_b)) << addr_b;
  EXPECT_NE(has(peers0, addr_a), has(peers0, addr_b)) << "both clients on one backend";
}

// HAProxy's checks send a LOCAL header and reset the connection at once, often before keel
// has accepted it: they must pass the allow list (keel knows the peer from accept) and open,
// not fill the log with warnings.
TEST_F(HaproxyTest, HealthChecksPassQuietly) {
  for (const Backend& b : backends_) {
    EXPECT_TRUE(eventually([&] { return accepted(b.admin) >= 5; }, 10s)) << accepted(b.admin);
    EXPECT_EQ(b.process->err().find("closed before it opened"), std::string::npos)
        << b.process->err();
  }
}

TEST_F(HaproxyTest, KillingABackendMovesNewClientsToTheOther) {
  backends_[0].process->signal(SIGKILL);
  ASSERT_TRUE(backends_[0].process->wait());
  // fall 1, inter 200ms: HAProxy says so on stderr within a few checks.
  ASSERT_TRUE(haproxy_.process().wait_for_stderr("keel0 is DOWN", 10s)) << haproxy_.process().err();

  std::vector<Fd> clients;
  for (int i = 0; i < 6; ++i) {
    Fd c = connect_to(frontend());
    ASSERT_TRUE(c.valid());
    std::string line = "client " + std::to_string(i) + "\n";
    EXPECT_EQ(round_trip(c.get(), line), line);
    clients.push_back(std::move(c));
  }
  std::vector<std::string> peers = listed_peers(backends_[1].admin);
  for (const Fd& c : clients)
    EXPECT_NE(std::find(peers.begin(), peers.end(), local_address(c.get())), peers.end())
        << local_address(c.get()) << " not on the surviving backend";
}

}  // namespace
}  // namespace keel::test
