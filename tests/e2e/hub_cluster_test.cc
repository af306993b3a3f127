// Hub attach across cluster nodes: two `keel hub --redis` nodes on one redis-server, an
// operator on h1 runs `keel ctl attach h2/ID` for a client parked on h2. What the client held
// comes first, then its live lines; typed lines reach it; a second operator on h2 is told who
// holds it and from which node; ~. parks it again; 256 KiB past a 4 KiB --max-held-bytes
// arrives byte-exact (the credit travels back through Redis); the client leaving ends the
// session; either node dying ends the session on the other.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "e2e/hub_util.h"
#include "e2e/subprocess.h"
#include "integration/admin_fixture.h"
#include "redis_server.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;

class HubCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    for (const char* name : {"h1", "h2"}) {
      const std::string admin = "unix:" + dir_.path() + "/" + name + ".sock";
      auto hub = std::make_unique<Subprocess>(
          std::vector<std::string>{kKeel, "hub", "--listen", "127.0.0.1:0", "--redis", redis_.url(),
                                   "--node", name, "--admin", admin, "--max-held-bytes", "4096"});
      auto port = logged_port(*hub);
      ASSERT_TRUE(port && hub->wait_for_stderr(std::string("node ") + name + " joined"))
          << hub->err();
      admins_.push_back(admin);
      ports_.push_back(*port);
      hubs_.push_back(std::move(hub));
    }
    // Each has heard the other (attach waits for no one it has not heard of).
    for (const std::string& admin : admins_)
      ASSERT_TRUE(eventually([&] {
        Json s =
            Json::parse(run_keel({"ctl", "--admin", admin, "--json", "stats"}).out, nullptr, false);
        return s.is_object() && s["services"][0]["cluster"].value("nodes", 0) == 2;
      }));
  }
  // A client parked on h2, its lines read; its id as h1's operator names it ("h2/17") and as
  // h2's does ("17").
  LineClient park(std::string* remote_id, std::string* local_id) {
    LineClient client(connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(ports_[1]))));
    EXPECT_EQ(client.read_line(), "* keel hub: you are waiting for an operator");
    const std::string me = client.local_address();
    EXPECT_TRUE(eventually([&] {
      Json reply = Json::parse(run_keel({"ctl", "--admin", admins_[1], "--json", "list"}).out,
                               nullptr, false);
      for (const Json& c : reply.value("clients", Json::array()))
        if (c.value("peer", "") == me) *local_id = c["id"].dump();
      return !local_id->empty();
    }));
    *remote_id = "h2/" + *local_id;
    return client;
  }
  // The h2 client's row in h2's own list.
  Json row_on_h2(const std::string& local_id) {
    Json reply =
        Json::parse(run_keel({"ctl", "--admin", admins_[1], "--json", "list"}).out, nullptr, false);
    for (const Json& c : reply.value("clients", Json::array()))
      if (c["id"].dump() == local_id) return c;
    return Json();
  }
  std::unique_ptr<Subprocess> attach_from_h1(const std::string& who) {
    return std::make_unique<Subprocess>(std::vector<std::string>{
        kKeel, "ctl", "--admin", admins_[0], "attach", who, "--operator", "alice"});
  }

  TempDir dir_;
  RedisServer redis_;
  std::vector<std::string> admins_;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<Subprocess>> hubs_;
};

TEST_F(HubCluster, AnOperatorOnOneNodeAttachesAClientOfAnother) {
  std::string id, local_id;
  LineClient client = park(&id, &local_id);
  ASSERT_TRUE(client.send("held line\n"));
  ASSERT_TRUE(eventually([&] { return row_on_h2(local_id).value("held", "") == "10"; }));

  auto session = attach_from_h1(id);
  ASSERT_TRUE(session->wait_for_stderr("attached to client " + id)) << session->err();
  EXPECT_TRUE(shows(*session, "held line\n")) << session->out();
  ASSERT_TRUE(client.send("live line\n"));
  EXPECT_TRUE(shows(*session, "held line\nlive line\n")) << session->out();
  session->write_stdin("hi from h1\n");
  EXPECT_EQ(client.read_line(), "hi from h1");

  // h2's own operator is told who holds it, and from where.
  CommandRun refused = run_keel({"ctl", "--admin", admins_[1], "attach", local_id});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("is attached by alice (uid "), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find(" on node h1"), std::string::npos) << refused.err;
  // watch stays per node, and says so.
  CommandRun watch = run_keel({"ctl", "--admin", admins_[0], "watch", id});
  EXPECT_NE(watch.code, 0);
  EXPECT_NE(watch.err.find("watch reaches this node's clients only"), std::string::npos)
      << watch.err;

  // ~. parks it again on h2: what it sends next is held there.
  session->write_stdin("~.\n");
  EXPECT_EQ(session->wait(), 0) << session->err();
  EXPECT_NE(session->err().find("detached; client " + id + " is parked again"), std::string::npos)
      << session->err();
  ASSERT_TRUE(client.send("parked again\n"));
  EXPECT_TRUE(eventually([&] {
    Json row = row_on_h2(local_id);
    return row.value("held", "") == "13" && !row.contains("attached");
  })) << row_on_h2(local_id).dump();

  // Again, and the client leaves: the session ends with it.
  auto again = attach_from_h1(id);
  ASSERT_TRUE(again->wait_for_stderr("attached to client " + id)) << again->err();
  EXPECT_TRUE(shows(*again, "parked again\n")) << again->out();
  client = LineClient();
  EXPECT_EQ(again->wait(), 0) << again->err();
  EXPECT_NE(again->err().find("client " + id + " left: "), std::string::npos) << again->err();
}

TEST_F(HubCluster, FlowControlSpansTheNodes) {
  std::string id, local_id;
  LineClient client = park(&id, &local_id);
  const std::string pushed = numbered_lines(256 * 1024);
  std::thread writer([&] { write_all(client.fd(), pushed, std::chrono::seconds(60)); });
  // Parked: held up to the bound, and no further.
  ASSERT_TRUE(
      eventually([&] { return std::stoul(row_on_h2(local_id).value("held", "0")) >= 4096; }));
  auto session = attach_from_h1(id);
  ASSERT_TRUE(session->wait_for_stderr("attached to client " + id)) << session->err();
  expect_all_then_detach(*session, pushed, writer);
}

TEST_F(HubCluster, TheClientsNodeDyingEndsTheSession) {
  std::string id, local_id;
  LineClient client = park(&id, &local_id);
  auto session = attach_from_h1(id);
  ASSERT_TRUE(session->wait_for_stderr("attached to client " + id)) << session->err();
  hubs_[1]->signal(SIGKILL);
  hubs_[1]->wait();
  // Heartbeats every second; a node silent for 5 s is lost.
  EXPECT_EQ(session->wait(std::chrono::seconds(15)), 0) << session->err();
  EXPECT_NE(session->err().find("client " + id + " left: node h2 is lost"), std::string::npos)
      << session->err();
}

TEST_F(HubCluster, TheOperatorsNodeDyingParksTheClientAgain) {
  std::string id, local_id;
  LineClient client = park(&id, &local_id);
  auto session = attach_from_h1(id);
  ASSERT_TRUE(session->wait_for_stderr("attached to client " + id)) << session->err();
  ASSERT_TRUE(eventually([&] { return row_on_h2(local_id).contains("attached"); }));
  hubs_[0]->signal(SIGKILL);
  hubs_[0]->wait();
  ASSERT_TRUE(eventually([&] { return !row_on_h2(local_id).contains("attached"); },
                         std::chrono::seconds(15)))
      << row_on_h2(local_id).dump();
  ASSERT_TRUE(client.send("held after h1 died\n"));
  EXPECT_TRUE(eventually([&] { return row_on_h2(local_id).value("held", "") == "19"; }));
}

}  // namespace
}  // namespace keel::test
