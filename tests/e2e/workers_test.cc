// keel echo --workers N as a subprocess: a supervisor and N prefork workers sharing one port
// with SO_REUSEPORT. Echoes; survives kill -9 of a worker (restarted, port answering); stops
// everything on SIGTERM; refuses services that share state; holds 30,000 idle connections.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "e2e/client_swarm.h"
#include "e2e/subprocess.h"

namespace keel::test {
namespace {

using Json = nlohmann::json;
const std::string kKeel = KEEL_BINARY;

Endpoint loopback(int port) {
  return Endpoint::parse("127.0.0.1:" + std::to_string(port));
}

// A fresh connection that echoes a few bytes back: the port answers.
bool answers(int port) {
  Fd fd = connect_to(loopback(port));
  if (!fd.valid()) return false;
  const std::string hello = "hello workers\n";
  return write_all(fd.get(), hello, 5s) && read_exactly(fd.get(), hello.size(), 5s) == hello;
}

// The "echo" service row of `keel ctl stats --json`, or null.
Json echo_stats(const std::string& admin) {
  Subprocess ctl({kKeel, "ctl", "--admin", admin, "stats", "--json"});
  if (ctl.wait() != 0) return nullptr;
  Json reply = Json::parse(ctl.out(), nullptr, false);
  if (reply.is_discarded() || !reply.contains("services")) return nullptr;
  for (const Json& s : reply["services"])
    if (s.value("service", "") == "echo") return s;
  return nullptr;
}

std::vector<uint64_t> worker_pids(const Json& stats) {
  std::vector<uint64_t> pids;
  if (stats.is_object() && stats.contains("workers"))
    for (const Json& w : stats["workers"]) pids.push_back(w.value("pid", uint64_t{0}));
  return pids;
}

bool process_exists(uint64_t pid) {
  return ::kill(static_cast<pid_t>(pid), 0) == 0;
}

long rss_kib(uint64_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return -1;
}

TEST(Workers, EchoSurvivesKillOfAWorkerAndStopsOnSigterm) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess keel({kKeel, "echo", "--workers", "2", "--listen", "127.0.0.1:0", "--admin", admin});
  auto port = logged_port(keel);
  ASSERT_TRUE(port) << keel.err();
  ASSERT_TRUE(keel.wait_for_stderr("admin listening")) << keel.err();
  ASSERT_TRUE(answers(*port));

  Json stats = echo_stats(admin);
  ASSERT_TRUE(stats.is_object()) << keel.err();
  EXPECT_EQ(stats["model"], "workers");
  std::vector<uint64_t> pids = worker_pids(stats);
  ASSERT_EQ(pids.size(), 2u) << stats.dump();
  for (uint64_t pid : pids) {
    ASSERT_NE(pid, 0u);
    EXPECT_NE(pid, static_cast<uint64_t>(keel.pid()));
    EXPECT_TRUE(process_exists(pid));
  }

  ::kill(static_cast<pid_t>(pids[0]), SIGKILL);
  // Reaped by the supervisor: only then are all its threads gone and its listener closed (a
  // zombie leader may still have threads holding the descriptors). Connections queued on that
  // listener when it closed are reset; that is the one loss a kill -9 causes.
  ASSERT_TRUE(eventually([&] { return !process_exists(pids[0]); }));
  // From here the other worker (and soon the replacement) takes every new connection.
  std::vector<uint64_t> now;
  ASSERT_TRUE(eventually(
      [&] {
        EXPECT_TRUE(answers(*port));
        now = worker_pids(stats = echo_stats(admin));
        return now.size() == 2 && now[0] != 0 && now[0] != pids[0];
      },
      10s))
      << stats.dump() << keel.err();
  EXPECT_EQ(now[1], pids[1]);
  EXPECT_EQ(stats["workers"][0]["restarts"], 1);
  EXPECT_EQ(stats["workers"][1]["restarts"], 0);
  EXPECT_TRUE(
      keel.wait_for_stderr("worker 0 \\(pid " + std::to_string(pids[0]) + "\\) killed by signal 9"))
      << keel.err();
  // The replacement serves too: enough fresh connections that the kernel's hash reaches it.
  ASSERT_TRUE(eventually([&] {
    EXPECT_TRUE(answers(*port));
    Json s = echo_stats(admin);
    return s.is_object() && s["workers"][0]["accepted"].get<uint64_t>() > 0;
  })) << echo_stats(admin).dump();

  // A client still connected at SIGTERM is drained, not cut: it gets its echo and a FIN.
  Fd client = connect_to(loopback(*port));
  ASSERT_TRUE(client.valid());
  ASSERT_TRUE(write_all(client.get(), "last\n"));
  ASSERT_EQ(read_exactly(client.get(), 5), "last\n");
  keel.signal(SIGTERM);
  EXPECT_EQ(read_until_end(client.get()), StreamEnd::eof);
  client.reset();  // our FIN lets the worker's drain finish
  EXPECT_EQ(keel.wait(), 0) << keel.err();
  for (uint64_t pid : now) EXPECT_FALSE(process_exists(pid)) << "worker " << pid << " left";
  EXPECT_FALSE(answers(*port));
}

TEST(Workers, RefusesServicesThatShareState) {
  Subprocess chat({kKeel, "chat", "--workers", "2", "--listen", "127.0.0.1:0", "--admin", "none"});
  EXPECT_EQ(chat.wait(), 1);
  EXPECT_EQ(chat.err(),
            "keel: chat shares state across connections: --workers needs a service like echo\n");
  Subprocess serve({kKeel, "serve", "--workers", "2", "--echo", "127.0.0.1:0", "--chat",
                    "127.0.0.1:0", "--admin", "none"});
  EXPECT_EQ(serve.wait(), 1);
  EXPECT_NE(serve.err().find("chat shares state across connections"), std::string::npos)
      << serve.err();
  Subprocess threads({kKeel, "echo", "--workers", "2", "--model", "threads", "--listen",
                      "127.0.0.1:0", "--admin", "none"});
  EXPECT_EQ(threads.wait(), 1);
  EXPECT_EQ(threads.err(),
            "keel: --workers runs reactor workers: it cannot be combined with --model threads\n");
  Subprocess unix_socket({kKeel, "echo", "--workers", "2", "--listen",
                          "unix:/tmp/keel-workers.sock", "--admin", "none"});
  EXPECT_NE(unix_socket.wait(), 0);
  EXPECT_NE(unix_socket.err().find("--workers needs TCP endpoints"), std::string::npos)
      << unix_socket.err();
}

// 30,000 concurrent idle connections to one port, over two workers. The open-file limit (20,000
// here) rules out one process on either side: each worker holds about 15,000, and three client
// processes hold 10,000 each, from source addresses of their own (127.0.0.2-4) because one
// address has fewer ephemeral ports than 30,000 towards a single server port.
TEST(Workers, ThirtyThousandIdleConnectionsOverTwoWorkers) {
  constexpr size_t kPerSwarm = 10'000;
  // Forked before the server starts, while this process has no other thread.
  std::vector<std::unique_ptr<ClientSwarm>> swarms;
  for (int i = 0; i < 3; ++i)
    swarms.push_back(std::make_unique<ClientSwarm>("127.0.0." + std::to_string(2 + i), kPerSwarm));
  TempDir dir;
  const std::string admin = "unix:" + dir.path() + "/admin.sock";
  Subprocess keel({kKeel, "echo", "--workers", "2", "--listen", "127.0.0.1:0", "--admin", admin});
  auto port = logged_port(keel);
  ASSERT_TRUE(port) << keel.err();
  ASSERT_TRUE(keel.wait_for_stderr("admin listening")) << keel.err();

  auto start = std::chrono::steady_clock::now();
  for (auto& s : swarms) s->go(*port);
  for (auto& s : swarms) EXPECT_EQ(s->report(60s), "ok " + std::to_string(kPerSwarm));
  double open_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  Json stats;
  EXPECT_TRUE(eventually([&] {
    stats = echo_stats(admin);
    return stats.is_object() && stats["connections"] == 3 * kPerSwarm;
  })) << stats.dump();
  std::vector<uint64_t> pids = worker_pids(stats);
  ASSERT_EQ(pids.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    uint64_t active = stats["workers"][i]["active"];
    EXPECT_GT(active, 10'000u) << "worker " << i << " got " << active << " connections";
    EXPECT_LT(active, 20'000u - 100) << "worker " << i << " near the open-file limit";
    RecordProperty("worker" + std::to_string(i) + "_connections", std::to_string(active));
    RecordProperty("worker" + std::to_string(i) + "_rss_kib", std::to_string(rss_kib(pids[i])));
  }
  std::printf(
      "30000 connections open and echoing in %.1f s; workers hold %s + %s with RSS %ld + "
      "%ld KiB; supervisor RSS %ld KiB\n",
      open_s, stats["workers"][0]["active"].dump().c_str(),
      stats["workers"][1]["active"].dump().c_str(), rss_kib(pids[0]), rss_kib(pids[1]),
      rss_kib(keel.pid()));

  for (auto& s : swarms) EXPECT_EQ(s->release(), 0);
  keel.signal(SIGTERM);
  EXPECT_EQ(keel.wait(30s), 0) << keel.err();
  for (uint64_t pid : pids) EXPECT_FALSE(process_exists(pid));
}

}  // namespace
}  // namespace keel::test
