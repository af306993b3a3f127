// A peer that vanishes without a FIN or a reset (a cable pulled, a NAT entry dropped): the
// server and the client each live in a network namespace of the test's own, joined by a veth
// pair, and `tc netem loss 100%` on the client's side drops everything it sends. The server
// must find it by TCP keepalive (reason "unreachable") or by the idle timeout (reason
// "idle_timeout"), while good clients in the server's namespace keep getting every byte, and
// its memory comes back. Needs root (namespaces, tc); skips with a message otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "e2e/fault.h"

namespace keel::test::fault {
namespace {

using namespace std::chrono_literals;

// Runs a command (argv, no shell); true when it exits 0. Its output is kept for messages.
bool run(std::vector<std::string> args, std::string* out = nullptr) {
  Subprocess p(std::move(args));
  std::optional<int> code = p.wait(std::chrono::seconds(10));
  if (out) *out = p.out() + p.err();
  return code == 0;
}

// Two namespaces, keel-fault-PID-s (server, 10.201.0.1/24) and keel-fault-PID-c (client,
// 10.201.0.2/24), joined by a veth pair; both removed by the destructor, also after a failure.
class NetnsPair {
 public:
  NetnsPair() {
    const std::string id = std::to_string(::getpid());
    server_ns = "keel-fault-" + id + "-s";
    client_ns = "keel-fault-" + id + "-c";
    server_dev = "kf" + id + "s";  // interface names are at most 15 characters
    client_dev = "kf" + id + "c";
    const std::string ip = "/usr/sbin/ip";
    std::vector<std::vector<std::string>> steps = {
        {ip, "netns", "add", server_ns},
        {ip, "netns", "add", client_ns},
        {ip, "link", "add", server_dev, "netns", server_ns, "type", "veth", "peer", "name",
         client_dev, "netns", client_ns},
        {ip, "-n", server_ns, "addr", "add", "10.201.0.1/24", "dev", server_dev},
        {ip, "-n", client_ns, "addr", "add", "10.201.0.2/24", "dev", client_dev},
        {ip, "-n", server_ns, "link", "set", server_dev, "up"},
        {ip, "-n", client_ns, "link", "set", client_dev, "up"},
        {ip, "-n", server_ns, "link", "set", "lo", "up"},
        {ip, "-n", client_ns, "link", "set", "lo", "up"},
    };
    for (auto& step : steps) {
      std::string out;
      if (!run(step, &out)) {
        error = "`" + join(step) + "` failed: " + out;
        return;
      }
    }
  }
  ~NetnsPair() {
    run({"/usr/sbin/ip", "netns", "del", client_ns});  // takes the veth pair with it
    run({"/usr/sbin/ip", "netns", "del", server_ns});
  }

  // Drops every packet the client's side sends from now on: `tc netem loss 100%`, or, on a
  // kernel without sch_netem (no module to load), the cable pulled: the client's veth set down.
  // Either way no FIN or reset ever reaches the server. Returns how, or "" on failure (*out).
  std::string drop_client_packets(std::string* out) {
    if (run({"/usr/sbin/tc", "-n", client_ns, "qdisc", "add", "dev", client_dev, "root", "netem",
             "loss", "100%"},
            out))
      return "tc netem loss 100%";
    std::string netem_error = *out;
    if (run({"/usr/sbin/ip", "-n", client_ns, "link", "set", "dev", client_dev, "down"}, out))
      return "veth down (tc netem: " + netem_error.substr(0, netem_error.find('\n')) + ")";
    return "";
  }

  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (auto& a : v) s += (s.empty() ? "" : " ") + a;
    return s;
  }

  std::string server_ns, client_ns, server_dev, client_dev;
  std::string error;  // empty when the set-up worked
};

// A TCP connection to `to`, made from inside network namespace `ns` (a thread joins it just to
// create the socket; the socket stays in that namespace). Invalid on failure.
Fd connect_from(const std::string& ns, const Endpoint& to) {
  Fd result;
  std::thread([&] {
    Fd nsfd(::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC));
    if (!nsfd.valid() || ::setns(nsfd.get(), CLONE_NEWNET) != 0) return;
    result = connect_to(to);
  }).join();
  return result;
}

struct Case {
  const char* name;
  std::vector<std::string> flags;
  const char* reason;  // the close reason the server must record
  std::chrono::seconds within;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class VanishedPeer : public ::testing::TestWithParam<Case> {};

TEST_P(VanishedPeer, IsFoundAndClosedWhileGoodClientsAreServed) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to create network namespaces and a veth pair (CI runs as root)";
  const Case& c = GetParam();
  NetnsPair net;
  ASSERT_EQ(net.error, "");
  TempDir dir;
  const std::string admin = "unix:" + dir.path() + "/admin.sock";
  std::vector<std::string> args = {"/usr/sbin/ip", "netns", "exec",     net.server_ns,
                                   KEEL_BINARY,    "echo",  "--listen", "10.201.0.1:0",
                                   "--admin",      admin};
  args.insert(args.end(), c.flags.begin(), c.flags.end());
  shrink_asan_quarantine();
  Subprocess server(args);  // `ip netns exec` execs keel: the same pid
  auto port = server.wait_for_stderr(R"(listening on 10\.201\.0\.1:(\d+))");
  ASSERT_TRUE(port) << server.err();
  const Endpoint ep = Endpoint::parse("10.201.0.1:" + *port);

  std::vector<Fd> good;
  for (size_t i = 0; i < Scene::kGoodClients; ++i) good.push_back(connect_from(net.server_ns, ep));
  EchoProbe probe(std::move(good));
  ASSERT_TRUE(probe.progresses(20)) << probe.stop().error;
  const size_t baseline = rss_kib(server.pid());
  RssPeak peak(server.pid());

  Fd peer = connect_from(net.client_ns, ep);
  ASSERT_TRUE(peer.valid()) << "the client namespace cannot reach the server";
  ASSERT_EQ(round_trip(peer.get(), "hello"), "hello");
  ASSERT_TRUE(holds(admin, Scene::kGoodClients + 1));
  std::string out;
  const std::string how = net.drop_client_packets(&out);
  ASSERT_NE(how, "") << out;
  const auto vanished = Clock::now();

  // The server finds out by itself: no FIN, no reset ever reaches it.
  ASSERT_TRUE(holds(admin, Scene::kGoodClients, c.within + 5s))
      << "the vanished peer was still held after " << (c.within + 5s).count() << " s";
  const double took = std::chrono::duration<double>(Clock::now() - vanished).count();
  nlohmann::json row = service_stats(admin);
  EXPECT_EQ(row["closed"][c.reason], 1) << row.dump();
  EXPECT_LE(took, static_cast<double>(c.within.count()) + 2.0);
  std::printf("[fault] vanished peer (%s, %s): closed as %s after %.1f s\n", c.name, how.c_str(),
              c.reason, took);

  EXPECT_TRUE(probe.progresses(20)) << "the good clients stalled";
  const size_t after = wait_rss_back(server.pid(), baseline);
  ProbeResult r = probe.stop();
  std::string line =
      report(std::string("vanished peer (") + c.name + ")", r, baseline, peak.peak_kib(), after);
  EXPECT_EQ(r.error, "");
  EXPECT_LE(after, rss_bound_kib(baseline)) << line;
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(20s), 0) << server.err();
}

// keepalive 1,1,2: idle 1 s, then two probes 1 s apart (and TCP_USER_TIMEOUT 3 s): about 3 s.
INSTANTIATE_TEST_SUITE_P(
    Faults, VanishedPeer,
    ::testing::Values(Case{"keepalive", {"--keepalive", "1,1,2"}, "unreachable", 3s},
                      Case{"idle timeout", {"--idle-timeout", "2"}, "idle_timeout", 2s}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.reason); });

}  // namespace
}  // namespace keel::test::fault
