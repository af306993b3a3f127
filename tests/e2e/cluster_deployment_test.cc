// A real deployment on loopback, all started by the test: Debian's redis-server and HAProxy,
// and three `keel chat --redis --proxy-protocol` nodes behind HAProxy (send-proxy-v2). 300
// clients spread over the nodes in 5 rooms: every member gets every room line once, in each
// sender's order; `keel ctl list --cluster` on one node lists all 300 by their real addresses;
// a node is killed, its clients reconnect through HAProxy (their nicks come free when the dead
// node's leases run out) and carry on; Redis is restarted and delivery goes on.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "e2e/haproxy.h"
#include "e2e/subprocess.h"
#include "redis_server.h"
#include "test_util.h"

namespace keel::test {
namespace {

using Json = nlohmann::json;
const std::string kKeel = KEEL_BINARY;
constexpr int kClients = 300;
constexpr int kRooms = 5;

struct Client {
  Fd fd;
  std::string buf;
  std::string nick, room;
  bool closed = false;
  std::string local;  // its own address as the nodes should list it
};

// Reads every client's lines (poll over all of them) and hands each to on_line, until done()
// or the timeout; a client whose connection ends is marked closed.
bool pump(std::vector<Client>& clients,
          const std::function<void(Client&, const std::string&)>& on_line,
          const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<pollfd> fds;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    fds.clear();
    for (Client& c : clients) fds.push_back({c.closed ? -1 : c.fd.get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 100) < 0) return false;
    for (size_t i = 0; i < clients.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Client& c = clients[i];
      char chunk[65536];
      ssize_t n = read_some(c.fd.get(), chunk, sizeof chunk);
      if (n <= 0) {
        c.closed = true;
        continue;
      }
      c.buf.append(chunk, static_cast<size_t>(n));
      for (size_t nl; (nl = c.buf.find('\n')) != std::string::npos;) {
        std::string line = c.buf.substr(0, nl);
        c.buf.erase(0, nl + 1);
        on_line(c, line);
      }
    }
  }
  return true;
}

class ClusterDeployment : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Haproxy::binary().empty()) << "scripts/install-deps.sh installs haproxy";
    ASSERT_TRUE(redis_.running());
    for (int i = 1; i <= 3; ++i) {
      const std::string name = "n" + std::to_string(i);
      const std::string admin = "unix:" + dir_.path() + "/" + name + ".sock";
      auto p = std::make_unique<Subprocess>(
          std::vector<std::string>{kKeel, "chat", "--listen", "127.0.0.1:0", "--proxy-protocol",
                                   "--proxy-allow", "127.0.0.1/32", "--max-input-rate", "off",
                                   "--redis", redis_.url(), "--node", name, "--admin", admin});
      auto port = logged_port(*p);
      ASSERT_TRUE(port && p->wait_for_stderr("node " + name + " joined through")) << p->err();
      ports_.push_back(*port);
      admins_.push_back(admin);
      nodes_.push_back(std::move(p));
    }
    ASSERT_TRUE(haproxy_.start(
        dir_.path(), [&](int port) { return config(port); },
        [](const Endpoint& frontend) {
          Fd c = connect_to(frontend);
          char buf[64];
          return c.valid() && wait_ready(c.get(), POLLIN, 2s) &&
                 read_some(c.get(), buf, sizeof buf) > 0;
        }))
        << "haproxy did not start";
  }

  std::string config(int port) const {
    std::string servers;
    for (size_t i = 0; i < ports_.size(); ++i)
      servers += "    server n" + std::to_string(i + 1) +
                 " 127.0.0.1:" + std::to_string(ports_[i]) +
                 " send-proxy-v2 check inter 200ms fall 1 rise 1\n";
    return "global\n    maxconn 2000\ndefaults\n    mode tcp\n    timeout connect 2s\n"
           "    timeout client 120s\n    timeout server 120s\n    retries 2\n"
           "    option redispatch\nfrontend chat\n    bind 127.0.0.1:" +
           std::to_string(port) +
           "\n    default_backend keel\nbackend keel\n    balance roundrobin\n" + servers;
  }

  // Connects c through HAProxy and gets it its nick (retrying while a dead node's lease holds
  // it) and room. False with the reason in *why.
  bool enter(Client& c, std::string* why) {
    c.fd = connect_to(haproxy_.frontend());
    c.buf.clear();
    c.closed = false;
    if (!c.fd.valid()) return *why = "connect failed", false;
    c.local = local_address(c.fd.get());
    auto wait_for = [&](const std::string& prefix) {
      std::string got;
      auto deadline = std::chrono::steady_clock::now() + 10s;
      while (got.empty() && std::chrono::steady_clock::now() < deadline) {
        if (size_t nl = c.buf.find('\n'); nl != std::string::npos) {
          std::string line = c.buf.substr(0, nl);
          c.buf.erase(0, nl + 1);
          if (line.starts_with(prefix)) got = line;
          continue;
        }
        if (!wait_ready(c.fd.get(), POLLIN, 1s)) continue;
        char chunk[4096];
        ssize_t n = read_some(c.fd.get(), chunk, sizeof chunk);
        if (n <= 0) break;
        c.buf.append(chunk, static_cast<size_t>(n));
      }
      return got;
    };
    if (wait_for("* welcome").empty()) return *why = "no welcome", false;
    bool named = eventually(
        [&] {
          write_all(c.fd.get(), "/nick " + c.nick + "\n");
          std::string reply = wait_for("");
          while (reply.starts_with("* claiming")) reply = wait_for("");
          return reply == "* you are now " + c.nick;
        },
        30s);
    if (!named) return *why = "could not take " + c.nick, false;
    write_all(c.fd.get(), "/join " + c.room + "\n");
    if (wait_for("* " + c.nick + " joined").empty()) return *why = "no join", false;
    return true;
  }

  // Waits until /who in every room lists exactly its members, each once (the nodes' views
  // agree, and a dead node's members are gone from them).
  bool rooms_settled(std::vector<Client>& clients) {
    std::map<std::string, std::multiset<std::string>> members;
    for (const Client& c : clients) members[c.room].insert(c.nick);
    return eventually(
        [&] {
          for (auto& [room, nicks] : members) {
            Client* asker = nullptr;
            for (Client& c : clients)
              if (c.room == room && !c.closed) asker = &c;
            if (!asker) return false;
            write_all(asker->fd.get(), "/who\n");
            std::string who;
            pump(
                clients,
                [&](Client& from, const std::string& line) {
                  if (&from == asker && line.starts_with("* in " + room + ":")) who = line;
                },
                [&] { return !who.empty(); }, 5s);
            std::multiset<std::string> listed;  // a nick listed twice (a dead node's view) differs
            std::string names = who.substr(who.find(':') + 1);
            for (size_t at = 0; at < names.size();) {
              size_t end = names.find(',', at);
              std::string n =
                  names.substr(at, end == std::string::npos ? std::string::npos : end - at);
              while (!n.empty() && n.front() == ' ') n.erase(0, 1);
              if (!n.empty()) listed.insert(n);
              if (end == std::string::npos) break;
              at = end + 1;
            }
            if (listed != nicks) return false;
          }
          return true;
        },
        30s);
  }

  // Each client sends `lines` lines tagged with phase; every member of its room must get each
  // once, in each sender's order, and nothing else that looks like a room line.
  void exchange(std::vector<Client>& clients, const std::string& phase, int lines) {
    std::map<std::string, std::vector<std::string>> senders_in_room;
    for (const Client& c : clients) senders_in_room[c.room].push_back(c.nick);
    for (int k = 0; k < lines; ++k)
      for (Client& c : clients)
        ASSERT_TRUE(write_all(c.fd.get(), phase + "-" + std::to_string(k) + "\n"));
    // Per receiver: the next line number expected from each sender.
    std::map<const Client*, std::map<std::string, int>> next;
    size_t expected = 0, got = 0;
    for (const Client& c : clients) expected += senders_in_room[c.room].size() * lines;
    std::string failure;
    bool done = pump(
        clients,
        [&](Client& c, const std::string& line) {
          if (!line.starts_with("<") || !failure.empty()) return;
          size_t close = line.find("> ");
          std::string sender = line.substr(1, close - 1);
          int& n = next[&c][sender];
          std::string want = "<" + sender + "> " + phase + "-" + std::to_string(n);
          if (line != want) {
            failure = c.nick + " got '" + line + "', expected '" + want + "'";
            return;
          }
          ++n;
          ++got;
        },
        [&] { return got == expected || !failure.empty(); }, 60s);
    ASSERT_TRUE(failure.empty()) << failure;
    ASSERT_TRUE(done) << phase << ": " << got << " of " << expected << " lines delivered";
  }

  std::vector<std::string> listed_peers(size_t node) {
    CommandRun run = run_command({kKeel, "ctl", "--admin", admins_[node], "--json", "list"});
    std::vector<std::string> peers;
    Json reply = Json::parse(run.out, nullptr, false);
    if (!reply.is_object()) return peers;
    for (const Json& c : reply.value("clients", Json::array()))
      peers.push_back(c.value("peer", ""));
    return peers;
  }

  TempDir dir_;
  RedisServer redis_;
  std::vector<std::unique_ptr<Subprocess>> nodes_;
  std::vector<int> ports_;
  std::vector<std::string> admins_;
  Haproxy haproxy_;
};

TEST_F(ClusterDeployment, ThreeHundredClientsThreeNodesANodeKilledAndARedisRestart) {
  std::vector<Client> clients(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients[i].nick = "u" + std::to_string(i);
    clients[i].room = "#r" + std::to_string(i % kRooms);
    std::string why;
    ASSERT_TRUE(enter(clients[i], &why)) << clients[i].nick << ": " << why;
  }
  // HAProxy spread them, and each node lists its clients by their own addresses (PROXY v2).
  std::set<std::string> addresses;
  for (const Client& c : clients) addresses.insert(c.local);
  for (size_t n = 0; n < nodes_.size(); ++n) EXPECT_GE(listed_peers(n).size(), 90u) << n + 1;
  // keel ctl list --cluster on one node shows all 300, each once, with its real address.
  std::set<std::string> seen;
  ASSERT_TRUE(eventually([&] {
    CommandRun run =
        run_command({kKeel, "ctl", "--admin", admins_[0], "--json", "list", "--cluster"});
    Json reply = Json::parse(run.out, nullptr, false);
    if (!reply.is_object() || !reply["clients"].is_array()) return false;
    seen.clear();
    size_t named = 0;
    for (const Json& c : reply["clients"]) {
      if (!c.contains("nick")) continue;  // HAProxy's health checks are listed too
      ++named;
      if (addresses.count(c.value("peer", ""))) seen.insert(c.value("peer", ""));
    }
    return named == static_cast<size_t>(kClients) && seen.size() == static_cast<size_t>(kClients);
  })) << seen.size()
      << " of " << kClients << " listed by their own addresses";
  ASSERT_TRUE(rooms_settled(clients));
  exchange(clients, "first", 3);
  if (HasFatalFailure()) return;

  // Node n3 dies: its clients see their connections end, come back through HAProxy to the
  // others, and take their nicks again once n3's leases have run out.
  const std::vector<std::string> n3_peers = listed_peers(2);
  const std::set<std::string> on_n3(n3_peers.begin(), n3_peers.end());
  nodes_[2]->signal(SIGKILL);
  ASSERT_TRUE(nodes_[2]->wait());
  std::vector<Client*> dropped;
  for (Client& c : clients)
    if (on_n3.count(c.local)) dropped.push_back(&c);
  ASSERT_GE(dropped.size(), 90u);
  ASSERT_TRUE(pump(
      clients, [](Client&, const std::string&) {},
      [&] {
        for (Client* c : dropped)
          if (!c->closed) return false;
        return true;
      },
      10s));
  ASSERT_TRUE(haproxy_.process().wait_for_stderr("n3 is DOWN", 10s));
  for (Client* c : dropped) {
    std::string why;
    ASSERT_TRUE(enter(*c, &why)) << c->nick << ": " << why;
  }
  // Each is now a client of n1 or n2, listed there by its new address. (Its new address may be
  // one another n3 client had: the kernel reuses ephemeral ports.)
  std::vector<std::string> now = listed_peers(0), on_n2 = listed_peers(1);
  now.insert(now.end(), on_n2.begin(), on_n2.end());
  const std::set<std::string> served(now.begin(), now.end());
  for (Client* c : dropped) EXPECT_TRUE(served.count(c->local)) << c->local << " is on no node";
  ASSERT_TRUE(rooms_settled(clients));
  exchange(clients, "second", 2);
  if (HasFatalFailure()) return;

  // Redis restarts (and forgets everything): the nodes reconnect, claim their nicks again,
  // and delivery goes on.
  redis_.kill();
  for (size_t n = 0; n < 2; ++n) ASSERT_TRUE(nodes_[n]->wait_for_stderr("link to .* is down"));
  ASSERT_TRUE(redis_.start());
  for (size_t n = 0; n < 2; ++n) ASSERT_TRUE(nodes_[n]->wait_for_stderr("link to .* is back"));
  exchange(clients, "third", 2);
  if (HasFatalFailure()) return;
  // The nicks are held in the new Redis again (renewed within a few seconds).
  EXPECT_TRUE(eventually(
      [&] {
        return redis_.command_line({"EXISTS", "keel:chat:name:u0"}) == ":1";
      },
      10s));
}

}  // namespace
}  // namespace keel::test
