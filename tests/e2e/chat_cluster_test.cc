// Several `keel chat --redis` nodes on one redis-server (Debian's, on a Unix socket, started by
// the test): rooms, /who, /rooms and private messages span the nodes, nicks are unique across
// them, each sender's lines arrive once and in order, local clients are served while Redis is
// down or stalled, delivery resumes after a restart, and a killed node's members leave.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/node_event.h"
#include "e2e/http_client.h"
#include "e2e/subprocess.h"
#include "redis_server.h"
#include "test_util.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;

// One chat client: lines in, lines out.
class User {
 public:
  User(int port, const std::string& nick) {
    fd_ = connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(port)));
    expect("* welcome");
    if (!nick.empty()) {
      say("/nick " + nick);
      expect("* you are now " + nick);
    }
  }
  bool say(const std::string& line) { return write_all(fd_.get(), line + "\n"); }
  // Its own address, as the node lists it.
  std::string local() const { return local_address(fd_.get()); }
  bool closed_by_server(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::string rest;
    return read_until_end(fd_.get(), &rest, timeout) == StreamEnd::eof;
  }
  // The next line, or "" at timeout / EOF.
  std::string line(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !wait_ready(fd_.get(), POLLIN, left)) return "";
      char chunk[65536];
      ssize_t n = read_some(fd_.get(), chunk, sizeof chunk);
      if (n <= 0) return "";
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  // Reads lines until one starts with prefix (returned); "" if none came in time. The lines
  // skipped on the way are kept in skipped().
  std::string expect(const std::string& prefix,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      std::string l = line(left);
      if (l.empty()) return "";
      if (l.starts_with(prefix)) return l;
      skipped_.push_back(l);
    }
  }
  void join(const std::string& room) {
    say("/join " + room);
    expect("* ");
  }

 private:
  Fd fd_;
  std::string buf_;
  std::vector<std::string> skipped_;
};

class ChatCluster : public ::testing::Test {
 protected:
  // Starts node `name`; its port, or 0.
  int start_node(const std::string& name, std::vector<std::string> extra = {"--admin", "none"}) {
    std::vector<std::string> args = {
        kKeel, "chat",    "--listen",   "127.0.0.1:0", "--max-input-rate",
        "off", "--redis", redis_.url(), "--node",      name};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<Subprocess>(args);
    auto port = logged_port(*p);
    if (!port || !p->wait_for_stderr("node " + name + " joined through")) {
      ADD_FAILURE() << p->err();
      return 0;
    }
    nodes_.push_back(std::move(p));
    return *port;
  }
  Subprocess& node(size_t i) { return *nodes_.at(i); }

  RedisServer redis_;
  std::vector<std::unique_ptr<Subprocess>> nodes_;
};

TEST_F(ChatCluster, RoomsWhoAndRoomsSpanTheNodes) {
  int p1 = start_node("n1"), p2 = start_node("n2"), p3 = start_node("n3");
  ASSERT_TRUE(p1 && p2 && p3);
  User alice(p1, "alice"), bob(p2, "bob"), carol(p3, "carol");
  alice.say("/join lobby");
  ASSERT_NE(alice.expect("* alice joined #lobby"), "");
  bob.say("/join lobby");
  ASSERT_NE(bob.expect("* bob joined #lobby"), "");
  ASSERT_NE(alice.expect("* bob joined #lobby"), "");  // from the other node
  carol.say("/join lobby");
  ASSERT_NE(alice.expect("* carol joined #lobby"), "");
  ASSERT_NE(bob.expect("* carol joined #lobby"), "");
  alice.say("hello, cluster");
  EXPECT_NE(alice.expect("<alice> hello, cluster"), "");
  EXPECT_NE(bob.expect("<alice> hello, cluster"), "");
  EXPECT_NE(carol.expect("<alice> hello, cluster"), "");
  bob.say("/who");
  EXPECT_EQ(bob.expect("* in #lobby:"), "* in #lobby: bob, alice, carol");
  carol.say("/rooms");
  EXPECT_EQ(carol.expect("* rooms:"), "* rooms: #lobby (3)");
  bob.say("/leave");
  EXPECT_NE(alice.expect("* bob left #lobby"), "");
  EXPECT_NE(carol.expect("* bob left #lobby"), "");
}

TEST_F(ChatCluster, NicksAreUniqueAcrossNodesAndFreedWhenTheirHolderGoes) {
  int p1 = start_node("n1"), p2 = start_node("n2");
  ASSERT_TRUE(p1 && p2);
  auto alice = std::make_unique<User>(p1, "alice");
  User other(p2, "");
  other.say("/nick ALICE");
  EXPECT_EQ(other.expect("! nickname"), "! nickname ALICE is taken (on node n1)");
  alice.reset();  // disconnects: the name is released
  EXPECT_TRUE(eventually([&] {
    other.say("/nick alice");
    std::string reply = other.expect("");
    while (reply.starts_with("* claiming")) reply = other.expect("");
    return reply == "* you are now alice";
  }));
}

// Commands sent in one go after a /nick wait for its claim, and run in order after it.
TEST_F(ChatCluster, LinesAfterANickClaimRunInOrderOnceItIsAnswered) {
  int p1 = start_node("n1");
  ASSERT_TRUE(p1);
  User u(p1, "");
  ASSERT_TRUE(u.say("/nick quick\n/join fast\nfirst words\n/who"));
  EXPECT_EQ(u.line(), "* claiming quick in the cluster...");
  EXPECT_EQ(u.line(), "* you are now quick");
  EXPECT_EQ(u.line(), "* quick joined #fast");
  EXPECT_EQ(u.line(), "<quick> first words");
  EXPECT_EQ(u.line(), "* in #fast: quick");
}

TEST_F(ChatCluster, PrivateMessagesReachAnotherNode) {
  int p1 = start_node("n1"), p2 = start_node("n2");
  ASSERT_TRUE(p1 && p2);
  User alice(p1, "alice"), carol(p2, "carol");
  // carol's nick reaches n1's view with her node's event; until then she is "no such nick".
  ASSERT_TRUE(eventually([&] {
    alice.say("/msg carol are you there?");
    return alice.expect("").starts_with("* (private to carol)");
  }));
  EXPECT_EQ(carol.expect("<alice>"), "<alice> (private) are you there?");
  alice.say("/msg nobody hi");
  EXPECT_EQ(alice.expect("!"), "! no such nick nobody");
}

// Two senders on two nodes, 500 lines each, as fast as they can: every member of the room, on
// every node, gets each line once, and each sender's lines in the order sent.
TEST_F(ChatCluster, EachSendersLinesArriveOnceAndInOrderOnEveryNode) {
  int p1 = start_node("n1"), p2 = start_node("n2"), p3 = start_node("n3");
  ASSERT_TRUE(p1 && p2 && p3);
  User a(p1, "a"), b(p2, "b"), c(p3, "c");
  a.join("r");
  b.join("r");
  c.join("r");
  ASSERT_NE(a.expect("* c joined #r"), "");
  ASSERT_NE(b.expect("* c joined #r"), "");
  constexpr int kLines = 500;
  for (int i = 0; i < kLines; ++i) {
    a.say("a" + std::to_string(i));
    b.say("b" + std::to_string(i));
  }
  for (User* u : {&a, &b, &c}) {
    int next_a = 0, next_b = 0;
    while (next_a < kLines || next_b < kLines) {
      std::string l = u->line();
      ASSERT_NE(l, "") << "stopped at a" << next_a << " b" << next_b;
      if (l.starts_with("<a> ")) {
        ASSERT_EQ(l, "<a> a" + std::to_string(next_a++));
      } else if (l.starts_with("<b> ")) {
        ASSERT_EQ(l, "<b> b" + std::to_string(next_b++));
      }
    }
  }
}

// Redis goes away: each node keeps serving its own clients; lines sent meanwhile reach the
// other node once Redis is back (kept in the node's outage buffer), and later ones too.
TEST_F(ChatCluster, LocalClientsAreServedWhileRedisIsDownAndDeliveryResumes) {
  int p1 = start_node("n1"), p2 = start_node("n2");
  ASSERT_TRUE(p1 && p2);
  User a(p1, "a"), a2(p1, "a2"), b(p2, "b");
  a.join("r");
  a2.join("r");
  b.join("r");
  ASSERT_NE(a.expect("* b joined #r"), "");
  redis_.kill();
  ASSERT_TRUE(node(0).wait_for_stderr("link to .* is down"));
  a.say("while redis is down");
  EXPECT_NE(a2.expect("<a> while redis is down", std::chrono::seconds(2)), "");
  ASSERT_TRUE(redis_.start());
  ASSERT_TRUE(node(0).wait_for_stderr("link to .* is back"));
  EXPECT_NE(b.expect("<a> while redis is down"), "");
  a.say("after the restart");
  EXPECT_NE(b.expect("<a> after the restart"), "");
  b.say("and back");
  EXPECT_NE(a.expect("<b> and back"), "");
}

// A stalled Redis (SIGSTOP: connections open, nothing answered) must not hold up the nodes'
// loops: local room lines keep their usual latency. A blocking call would stall them for the
// link's reply timeout (3 s); the bound here (1 s) is well under it and far over a normal round
// trip (under a millisecond), so a busy machine does not fail it.
TEST_F(ChatCluster, AStalledRedisDoesNotDelayLocalDelivery) {
  int p1 = start_node("n1");
  ASSERT_TRUE(p1);
  User a(p1, "a"), a2(p1, "a2");
  a.join("r");
  a2.join("r");
  redis_.pause();
  auto worst = std::chrono::nanoseconds(0);
  for (int i = 0; i < 50; ++i) {
    auto start = std::chrono::steady_clock::now();
    a.say("ping " + std::to_string(i));
    ASSERT_EQ(a2.expect("<a> ping", std::chrono::seconds(5)), "<a> ping " + std::to_string(i));
    worst = std::max(worst, std::chrono::steady_clock::now() - start);
    if (i == 25) {
      ASSERT_TRUE(node(0).wait_for_stderr("no reply within"));  // the stall was seen
    }
  }
  redis_.resume();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(worst).count(), 1000);
}

TEST_F(ChatCluster, AKilledNodesMembersLeaveTheOthersRooms) {
  int p1 = start_node("n1"), p2 = start_node("n2");
  ASSERT_TRUE(p1 && p2);
  User a(p1, "a"), b(p2, "b");
  a.join("r");
  b.join("r");
  ASSERT_NE(a.expect("* b joined #r"), "");
  node(1).signal(SIGKILL);
  EXPECT_EQ(a.expect("* b left", std::chrono::seconds(15)), "* b left #r (node lost n2)");
  a.say("/who");
  EXPECT_EQ(a.expect("* in #r:"), "* in #r: a");
}

// The link's state shows where an operator looks: keel ctl stats (JSON and table) and /metrics.
TEST_F(ChatCluster, TheLinksStateShowsInCtlStatsAndMetrics) {
  TempDir dir;
  const std::string admin = "unix:" + dir.path() + "/admin.sock";
  int p1 = start_node("n1", {"--admin", admin, "--http", "127.0.0.1:0"});
  ASSERT_TRUE(p1);
  auto http = node(0).wait_for_stderr(R"(http listening on 127\.0\.0\.1:(\d+))");
  auto token = node(0).wait_for_stderr(R"(#token=([0-9a-f]+))");
  ASSERT_TRUE(http && token) << node(0).err();
  const std::string auth = "Authorization: Bearer " + *token + "\r\n";
  auto cluster = [&] {
    CommandRun run = run_command({kKeel, "ctl", "--admin", admin, "--json", "stats"});
    nlohmann::json reply = nlohmann::json::parse(run.out, nullptr, false);
    if (!reply.is_object() || !reply["services"].is_array() || reply["services"].empty())
      return nlohmann::json();
    return reply["services"][0].value("cluster", nlohmann::json());
  };
  auto metric = [&](const std::string& sample) {
    std::string body = http_get(std::stoi(*http), "/metrics", auth).body;
    size_t at = body.find(sample + " ");
    return at == std::string::npos
               ? std::string("absent")
               : body.substr(at + sample.size() + 1, body.find('\n', at) - at - sample.size() - 1);
  };
  const std::string up = "keel_cluster_up{service=\"chat\",node=\"n1\"}";
  nlohmann::json c = cluster();
  ASSERT_TRUE(c.is_object()) << c.dump();
  EXPECT_EQ(c["node"], "n1");
  EXPECT_EQ(c["up"], true);
  EXPECT_EQ(c["nodes"], 1);
  EXPECT_EQ(metric(up), "1");
  redis_.kill();
  ASSERT_TRUE(eventually([&] { return cluster().value("up", true) == false; }));
  EXPECT_NE(cluster().value("last_error", std::string()), "");
  EXPECT_EQ(metric(up), "0");
  CommandRun table = run_command({kKeel, "ctl", "--admin", admin, "stats"});
  EXPECT_NE(table.out.find("chat cluster: node n1, LINK DOWN ("), std::string::npos) << table.out;
  ASSERT_TRUE(redis_.start());
  ASSERT_TRUE(eventually([&] { return cluster().value("up", false) == true; }));
  EXPECT_EQ(cluster()["reconnects"], 1);
  EXPECT_EQ(metric(up), "1");
  EXPECT_EQ(metric("keel_cluster_reconnects_total{service=\"chat\",node=\"n1\"}"), "1");
  // Nothing was sent while it was down: nothing dropped, nothing missed.
  EXPECT_EQ(cluster()["dropped_events"], 0);
  EXPECT_EQ(metric("keel_cluster_dropped_events_total{service=\"chat\",node=\"n1\"}"), "0");
  EXPECT_EQ(metric("keel_cluster_lost_events_total{service=\"chat\",node=\"n1\"}"), "0");
}

// keel ctl on one node sees and reaches the clients of every node: list --cluster (ids NODE/ID,
// real peers), stats --cluster (per node and summed), send and kick to NODE/ID.
TEST_F(ChatCluster, TheOperatorSeesAndReachesEveryNode) {
  TempDir dir;
  const std::string a1 = "unix:" + dir.path() + "/a1.sock", a2 = "unix:" + dir.path() + "/a2.sock";
  int p1 = start_node("n1", {"--admin", a1}), p2 = start_node("n2", {"--admin", a2});
  ASSERT_TRUE(p1 && p2);
  User alice(p1, "alice"), bob(p2, "bob");
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {kKeel, "ctl", "--admin", a1});
    return run_command(args);
  };
  nlohmann::json bob_row;
  ASSERT_TRUE(eventually([&] {
    nlohmann::json reply =
        nlohmann::json::parse(ctl({"--json", "list", "--cluster"}).out, nullptr, false);
    if (!reply.is_object() || !reply["clients"].is_array()) return false;
    bool has_alice = false;
    for (const auto& row : reply["clients"]) {
      if (row.value("node", "") == "n2" && row.value("nick", "") == "bob") bob_row = row;
      has_alice = has_alice || (row.value("node", "") == "n1" && row.value("nick", "") == "alice");
    }
    return has_alice && bob_row.is_object();
  })) << ctl({"--json", "list", "--cluster"}).out;
  EXPECT_EQ(bob_row["peer"], bob.local());
  const std::string bob_id = "n2/" + bob_row["id"].dump();
  CommandRun table = ctl({"list", "--cluster"});
  EXPECT_NE(table.out.find(bob_id + " "), std::string::npos) << table.out;

  CommandRun sent = ctl({"send", bob_id, "hello", "bob"});
  EXPECT_EQ(sent.code, 0) << sent.err;
  EXPECT_EQ(bob.expect("* [operator]"), "* [operator] hello bob");

  nlohmann::json stats =
      nlohmann::json::parse(ctl({"--json", "stats", "--cluster"}).out, nullptr, false);
  ASSERT_TRUE(stats.is_object()) << stats.dump();
  EXPECT_EQ(stats["totals"]["connections"], 2);
  EXPECT_EQ(stats["nodes"].size(), 2u);
  EXPECT_NE(ctl({"stats", "--cluster"}).out.find("cluster: 2 connections"), std::string::npos);

  CommandRun kicked = ctl({"kick", bob_id, "enough"});
  EXPECT_EQ(kicked.code, 0) << kicked.err;
  EXPECT_EQ(bob.expect("* you were kicked"), "* you were kicked by the operator: enough");
  EXPECT_TRUE(bob.closed_by_server());

  CommandRun nowhere = ctl({"send", "n9/1", "hi"});
  EXPECT_NE(nowhere.code, 0);
  EXPECT_NE(nowhere.err.find("node n9 did not answer"), std::string::npos) << nowhere.err;
}

// Whoever can write to Redis can answer an operator's request, with anything: replies of the
// wrong shape are skipped, and the node asking neither crashes nor hangs.
TEST_F(ChatCluster, AMalformedReplyFromAnotherNodeIsSkipped) {
  TempDir dir;
  const std::string admin = "unix:" + dir.path() + "/admin.sock";
  int p1 = start_node("n1", {"--admin", admin});
  ASSERT_TRUE(p1);
  User alice(p1, "alice");
  alice.join("#r");
  uint64_t seq = 1;
  auto inject = [&](cluster::EventKind kind, std::vector<std::string> args) {
    std::string bytes = cluster::encode(cluster::NodeEvent{kind, seq++, "evil", std::move(args)});
    return redis_.command_line({"XADD", "keel:chat:events", "*", "e", bytes});
  };
  // "evil" is a live node (it was heard from), so n1 waits for its answer.
  ASSERT_FALSE(inject(cluster::EventKind::heartbeat, {}).empty());
  int request = 0;
  for (const char* reply : {R"({"ok":"yes","clients":[{"id":1}]})",
                            R"({"ok":true,"clients":[1,"x",null,{"id":7,"peer":"p"}]})"}) {
    ++request;  // n1's relay numbers its requests 1, 2, ...
    Subprocess list({kKeel, "ctl", "--admin", admin, "--json", "list", "--cluster"});
    // The reply may only be taken once the request is waiting: sent until ctl has its answer.
    std::optional<int> code;
    for (int i = 0; i < 200 && !(code = list.wait(std::chrono::milliseconds(20))); ++i) {
      inject(cluster::EventKind::heartbeat, {});
      inject(cluster::EventKind::op_reply, {std::to_string(request), "n1", reply});
    }
    ASSERT_EQ(code, 0) << list.err();
    nlohmann::json got = nlohmann::json::parse(list.out(), nullptr, false);
    ASSERT_TRUE(got.is_object()) << list.out();
    size_t from_n1 = 0, from_evil = 0;
    for (const auto& row : got["clients"]) (row.value("node", "") == "n1" ? from_n1 : from_evil)++;
    EXPECT_EQ(from_n1, 1u) << list.out();
    // The first reply is not ok: nothing of it; the second keeps its one object row.
    EXPECT_EQ(from_evil, request == 1 ? 0u : 1u) << list.out();
  }
  alice.say("/who");  // n1 still serves
  EXPECT_EQ(alice.expect("* in #r:"), "* in #r: alice");
}

// keel hub --redis: the hubs share nothing but the operator's view, so an operator on one node
// lists and reaches the clients parked on another.
TEST_F(ChatCluster, HubNodesShowEachOthersClientsToTheOperator) {
  TempDir dir;
  const std::string a1 = "unix:" + dir.path() + "/h1.sock", a2 = "unix:" + dir.path() + "/h2.sock";
  std::vector<std::unique_ptr<Subprocess>> hubs;
  std::vector<int> ports;
  for (auto [name, admin] : {std::pair{"h1", a1}, std::pair{"h2", a2}}) {
    hubs.push_back(std::make_unique<Subprocess>(
        std::vector<std::string>{kKeel, "hub", "--listen", "127.0.0.1:0", "--redis", redis_.url(),
                                 "--node", name, "--admin", admin}));
    auto port = logged_port(*hubs.back());
    ASSERT_TRUE(port && hubs.back()->wait_for_stderr(std::string("node ") + name + " joined"))
        << hubs.back()->err();
    ports.push_back(*port);
  }
  Fd parked = connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(ports[1])));
  ASSERT_TRUE(parked.valid());
  const std::string me = local_address(parked.get());
  std::string id;
  ASSERT_TRUE(eventually([&] {
    CommandRun run = run_command({kKeel, "ctl", "--admin", a1, "--json", "list", "--cluster"});
    nlohmann::json reply = nlohmann::json::parse(run.out, nullptr, false);
    if (!reply.is_object() || !reply["clients"].is_array()) return false;
    for (const auto& row : reply["clients"])
      if (row.value("node", "") == "h2" && row.value("peer", "") == me)
        id = "h2/" + row["id"].dump();
    return !id.empty();
  }));
  CommandRun sent = run_command({kKeel, "ctl", "--admin", a1, "send", id, "hello from h1"});
  EXPECT_EQ(sent.code, 0) << sent.err;
  std::string got;
  ASSERT_TRUE(eventually([&] {
    char buf[4096];
    if (wait_ready(parked.get(), POLLIN, std::chrono::milliseconds(100))) {
      ssize_t n = read_some(parked.get(), buf, sizeof buf);
      if (n > 0) got.append(buf, static_cast<size_t>(n));
    }
    return got.find("hello from h1") != std::string::npos;
  })) << got;
  nlohmann::json stats = nlohmann::json::parse(
      run_command({kKeel, "ctl", "--admin", a1, "--json", "stats"}).out, nullptr, false);
  ASSERT_TRUE(stats.is_object());
  const nlohmann::json cluster = stats["services"][0].value("cluster", nlohmann::json());
  EXPECT_EQ(cluster.value("node", ""), "h1");
  EXPECT_EQ(cluster.value("up", false), true);
  EXPECT_TRUE(eventually([&] {
    nlohmann::json s = nlohmann::json::parse(
        run_command({kKeel, "ctl", "--admin", a1, "--json", "stats"}).out, nullptr, false);
    return s.is_object() && s["services"][0]["cluster"].value("nodes", 0) == 2;
  }));
}

// A password-protected Redis, the password in a file: the node joins; a password given twice,
// or a file that is not there, is refused before anything starts.
TEST(ChatClusterAuth, ThePasswordComesFromAFile) {
  RedisServer redis("s3cret pass");
  TempDir dir;
  const std::string file = dir.path() + "/redis.pass";
  std::ofstream(file) << "s3cret pass\n";
  Subprocess node({kKeel, "chat", "--listen", "127.0.0.1:0", "--admin", "none", "--redis",
                   redis.url(), "--redis-password-file", file, "--node", "p1"});
  EXPECT_TRUE(node.wait_for_stderr("node p1 joined through")) << node.err();

  CommandRun twice =
      run_command({kKeel, "chat", "--listen", "127.0.0.1:0", "--admin", "none", "--redis",
                   redis.url() + "?password=x", "--redis-password-file", file});
  EXPECT_NE(twice.code, 0);
  EXPECT_NE(twice.err.find("keep one of them"), std::string::npos) << twice.err;
  EXPECT_EQ(twice.err.find("password=x"), std::string::npos) << "the password was printed";
  CommandRun missing =
      run_command({kKeel, "chat", "--listen", "127.0.0.1:0", "--admin", "none", "--redis",
                   redis.url(), "--redis-password-file", dir.path() + "/none"});
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(
      missing.err.find("redis password file " + dir.path() + "/none: missing, unreadable or empty"),
      std::string::npos)
      << missing.err;
}

}  // namespace
}  // namespace keel::test
