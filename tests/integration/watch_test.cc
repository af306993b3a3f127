// The admin request watch under each model whose connections live in this process: the tap
// sees both directions in order and the close; a watcher that does not read never slows the
// client and is told what it missed ("skipped"); the session ends as the protocol says.
#include <gtest/gtest.h>

#include <thread>

#include "admin/base64.h"
#include "integration/admin_fixture.h"

namespace keel::test {
namespace {

class WatchTest : public AdminEngineTest {
 protected:
  // The next event line on a watching admin connection (a discarded value when none came).
  static Json next_event(LineClient& admin,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto line = admin.read_line(timeout);
    return line ? Json::parse(*line, nullptr, false) : Json(Json::value_t::discarded);
  }
  // Starts watching client; returns once the tap is in place ("started").
  void watch(LineClient& admin, const LineClient& client) {
    Json reply = admin.request({{"cmd", "watch"}, {"to", client.local_address()}});
    ASSERT_EQ(reply.value("ok", false), true) << reply;
    EXPECT_EQ(reply["peer"], client.local_address());
    EXPECT_EQ(reply["service"], "echo");
    Json started = next_event(admin);
    ASSERT_EQ(started.value("event", ""), "started") << started;
  }
  static std::string data_of(const Json& ev) {
    return admin::base64_decode(ev.value("data", "")).value_or("<bad base64>");
  }
};

TEST_P(WatchTest, SeesBothDirectionsInOrderThenTheClose) {
  start_admin();
  auto client = std::make_unique<LineClient>(connect_service(*echo_engine_));
  LineClient admin = connect_admin();
  watch(admin, *client);
  for (const char* line : {"one\n", "two\n"}) {
    ASSERT_TRUE(client->send(line));
    ASSERT_TRUE(client->read_line());
  }
  std::vector<std::pair<std::string, std::string>> seen;
  for (int i = 0; i < 4; ++i) {
    Json ev = next_event(admin);
    ASSERT_EQ(ev.value("event", ""), "data") << ev;
    EXPECT_TRUE(ev.value("at", "").ends_with("Z")) << ev;
    seen.emplace_back(ev.value("dir", ""), data_of(ev));
  }
  std::vector<std::pair<std::string, std::string>> expected{
      {"in", "one\n"}, {"out", "one\n"}, {"in", "two\n"}, {"out", "two\n"}};
  EXPECT_EQ(seen, expected);
  client.reset();
  Json closed = next_event(admin);
  EXPECT_EQ(closed.value("event", ""), "closed") << closed;
  EXPECT_FALSE(closed.value("reason", "").empty()) << closed;
  // The session is over: the connection takes requests again.
  EXPECT_EQ(admin.request({{"cmd", "stats"}}).value("ok", false), true);
}

TEST_P(WatchTest, TwoWatchersAndDetach) {
  start_admin();
  LineClient client = connect_service(*echo_engine_);
  LineClient a = connect_admin(), b = connect_admin();
  watch(a, client);
  watch(b, client);
  ASSERT_TRUE(client.send("x\n"));
  ASSERT_TRUE(client.read_line());
  for (LineClient* admin : {&a, &b}) {
    EXPECT_EQ(data_of(next_event(*admin)), "x\n");
    EXPECT_EQ(data_of(next_event(*admin)), "x\n");
  }
  // detach ends one watcher's session; the other goes on.
  Json detached = a.request({{"cmd", "detach"}});
  EXPECT_EQ(detached.value("ok", false), true) << detached;
  ASSERT_TRUE(client.send("y\n"));
  ASSERT_TRUE(client.read_line());
  EXPECT_EQ(data_of(next_event(b)), "y\n");
  EXPECT_EQ(a.request({{"cmd", "stats"}}).value("ok", false), true);
  // A second watch on a watching connection is refused.
  Json again = b.request({{"cmd", "watch"}, {"to", client.local_address()}});
  // (b is streaming: its next line may be an event; the refusal follows.)
  while (again.value("event", "") == "data") again = next_event(b);
  EXPECT_EQ(again.value("ok", true), false) << again;
}

TEST_P(WatchTest, ASlowWatcherLosesBytesWithAMarkerAndNeverSlowsTheClient) {
  start_admin();
  auto client = std::make_unique<LineClient>(connect_service(*echo_engine_));
  LineClient admin = connect_admin();
  watch(admin, *client);
  // The watcher reads nothing while 16 MiB go through the echo both ways.
  constexpr size_t kTotal = 16 << 20;
  const std::string chunk(64 << 10, 'x');
  std::thread writer([&] {
    for (size_t sent = 0; sent < kTotal; sent += chunk.size()) ASSERT_TRUE(client->send(chunk));
  });
  size_t echoed = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (echoed < kTotal && std::chrono::steady_clock::now() < deadline) {
    if (!wait_ready(client->fd(), POLLIN, std::chrono::milliseconds(200))) continue;
    char buf[65536];
    ssize_t n = read_some(client->fd(), buf, sizeof buf);
    if (n == 0) break;
    if (n > 0) echoed += static_cast<size_t>(n);
  }
  writer.join();
  ASSERT_EQ(echoed, kTotal);
  client.reset();
  // Everything the tap saw is accounted for: as data, or in a skipped marker.
  uint64_t data = 0, skipped = 0, markers = 0;
  for (int i = 0; i < 100000; ++i) {
    Json ev = next_event(admin);
    ASSERT_FALSE(ev.is_discarded()) << "data " << data << " skipped " << skipped;
    std::string kind = ev.value("event", "");
    if (kind == "data") data += data_of(ev).size();
    if (kind == "skipped") {
      ++markers;
      skipped += std::stoull(ev.value("bytes", "0"));
    }
    if (kind == "closed") break;
  }
  EXPECT_GT(markers, 0u);
  EXPECT_EQ(data + skipped, 2 * uint64_t{kTotal});
}

INSTANTIATE_TEST_SUITE_P(Models, WatchTest, ::testing::ValuesIn(in_process_models()), model_name);

TEST_F(AdminTest, WatchNamesNoSuchClient) {
  start_admin();
  LineClient admin = connect_admin();
  Json reply = admin.request({{"cmd", "watch"}, {"to", 12345}});
  EXPECT_EQ(reply.value("ok", true), false);
  EXPECT_EQ(reply.value("error", ""), "no such client 12345");
  reply = admin.request({{"cmd", "watch"}});
  EXPECT_EQ(reply.value("error", ""), "missing \"to\" (a client id or an address)");
}

}  // namespace
}  // namespace keel::test
