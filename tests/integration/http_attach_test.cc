// Attach from the dashboard (src/services/http/attach_sessions.h): a hub in-process with the
// HTTP endpoint; the browser's requests made by hand. What a parked client sent arrives first,
// then live; say reaches the client; detach parks it again; a second operator is refused with
// who holds the client; a closed event stream detaches; the session id is what opens the stream.
#include <gtest/gtest.h>

#include <thread>

#include "admin/base64.h"
#include "cli/http_endpoint.h"
#include "integration/admin_fixture.h"
#include "services/hub/hub_service.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

struct HttpReply {
  int status = 0;
  Json body;
};

class HttpAttachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<LoopPool>(1);
    pool_->start();
    ServerOptions options;
    options.listen.push_back(Endpoint::parse("127.0.0.1:0"));
    hub_engine_ = make_engine(Model::reactor, *pool_, options, hub_);
    hub_engine_->start();
    echo_engine_ = make_engine(Model::reactor, *pool_, options, echo_);
    echo_engine_->start();
    http_ = std::make_unique<cli::HttpEndpoint>(cli::HttpFlags{"127.0.0.1:0", ""}, "");
    http_->start({hub_engine_.get(), echo_engine_.get()}, *pool_);
    std::string url = http_->dashboard_url();
    token_ = url.substr(url.find("#token=") + 7);
    endpoint_ = Endpoint::parse(http_->endpoint());
  }
  void TearDown() override {
    http_.reset();
    echo_engine_.reset();
    hub_engine_.reset();
    pool_.reset();
  }

  std::string head(const std::string& method, const std::string& path) const {
    return method + " " + path + " HTTP/1.1\r\nHost: " + endpoint_.to_string() + "\r\n";
  }

  HttpReply post(const std::string& path, const Json& body, bool with_token = true) {
    std::string text = body.dump();
    LineClient c(connect_to(endpoint_));
    c.send(head("POST", path) + (with_token ? "Authorization: Bearer " + token_ + "\r\n" : "") +
           "Content-Type: application/json\r\nContent-Length: " + std::to_string(text.size()) +
           "\r\nConnection: close\r\n\r\n" + text);
    std::string all;
    c.read_to_end(&all);
    HttpReply reply;
    if (all.size() > 12) reply.status = std::atoi(all.c_str() + 9);
    size_t at = all.find("\r\n\r\n");
    if (at != std::string::npos) reply.body = Json::parse(all.substr(at + 4), nullptr, false);
    return reply;
  }

  // The session's event stream, its response head read.
  LineClient open_events(const std::string& session) {
    LineClient c(connect_to(endpoint_));
    c.send(head("GET", "/api/attach/events?session=" + session) + "\r\n");
    auto status = c.read_line();
    EXPECT_TRUE(status && status->find(" 200 ") != std::string::npos) << status.value_or("EOF");
    while (auto line = c.read_line())
      if (*line == "\r") break;
    return c;
  }

  // The next event on an attach stream: {type, its JSON data}.
  static std::pair<std::string, Json> next_event(LineClient& events) {
    std::string type;
    while (auto line = events.read_line(5s)) {
      if (line->starts_with("event: ")) type = line->substr(7);
      if (line->starts_with("data: ")) return {type, Json::parse(line->substr(6), nullptr, false)};
    }
    return {"(none)", Json()};
  }
  static std::string bytes_of(const Json& data) {
    return admin::base64_decode(data.value("data", "")).value_or("(bad base64)");
  }

  // A hub client that has sent line and whose bytes the hub holds.
  LineClient parked_client(const std::string& line) {
    LineClient c(connect_to(hub_engine_->endpoints().front()));
    EXPECT_TRUE(c.read_line());  // the greeting
    c.send(line);
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      size_t held = 0;
      hub_engine_->visit([&](const ClientSnapshot& s) {
        if (s.peer.to_string() == c.local_address()) held = hub_.held_bytes(s.id);
      });
      if (held == line.size()) return c;
      std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "the hub never held " << line;
    return c;
  }

  hub::HubService hub_;
  EchoService echo_;
  std::unique_ptr<LoopPool> pool_;
  std::unique_ptr<Engine> hub_engine_;
  std::unique_ptr<Engine> echo_engine_;
  std::unique_ptr<cli::HttpEndpoint> http_;
  std::string token_;
  Endpoint endpoint_;
};

TEST_F(HttpAttachTest, HeldThenLiveThenSayThenDetachParksAgain) {
  LineClient client = parked_client("while parked\n");
  HttpReply attached = post("/api/attach", Json{{"to", client.local_address()}});
  ASSERT_EQ(attached.status, 200) << attached.body.dump();
  EXPECT_EQ(attached.body["held"], 13);
  EXPECT_EQ(attached.body["framing"], "lines");
  std::string session = attached.body["session"];
  EXPECT_EQ(session.size(), 32u);
  LineClient events = open_events(session);
  auto [type, data] = next_event(events);
  EXPECT_EQ(type, "data");
  EXPECT_EQ(bytes_of(data), "while parked\n");

  client.send("live <b>\x1b\n");
  std::tie(type, data) = next_event(events);
  EXPECT_EQ(type, "data");
  EXPECT_EQ(bytes_of(data), "live <b>\x1b\n");

  HttpReply said = post("/api/attach/say", Json{{"session", session}, {"text", "hello client"}});
  EXPECT_EQ(said.status, 200) << said.body.dump();
  EXPECT_EQ(client.read_line(), "hello client");
  EXPECT_EQ(post("/api/attach/say", Json{{"session", session}, {"text", "two\nlines"}}).status,
            400);

  HttpReply detached = post("/api/attach/detach", Json{{"session", session}});
  EXPECT_EQ(detached.status, 200) << detached.body.dump();
  std::tie(type, data) = next_event(events);
  EXPECT_EQ(type, "detached");
  std::string rest;
  EXPECT_EQ(events.read_to_end(&rest), StreamEnd::eof);
  EXPECT_EQ(post("/api/attach/say", Json{{"session", session}, {"text", "x"}}).status, 404);

  // Parked again: what it sends now is held for the next session, in order.
  client.send("after detach\n");
  auto deadline = std::chrono::steady_clock::now() + 5s;
  HttpReply again;
  do {
    again = post("/api/attach", Json{{"to", client.local_address()}});
  } while (again.status == 409 && std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(again.status, 200) << again.body.dump();
  LineClient events2 = open_events(again.body["session"]);
  std::string seen;
  while (seen.find("after detach\n") == std::string::npos) {
    std::tie(type, data) = next_event(events2);
    ASSERT_EQ(type, "data") << "got " << seen;
    seen += bytes_of(data);
  }
}

TEST_F(HttpAttachTest, SecondOperatorIsRefusedWithWhoHoldsTheClient) {
  LineClient client = parked_client("hi\n");
  HttpReply first = post("/api/attach", Json{{"to", client.local_address()}});
  ASSERT_EQ(first.status, 200);
  HttpReply second = post("/api/attach", Json{{"to", client.local_address()}});
  EXPECT_EQ(second.status, 409);
  EXPECT_NE(second.body.value("error", "").find("the dashboard since"), std::string::npos)
      << second.body.dump();
}

TEST_F(HttpAttachTest, ClosingTheEventStreamDetaches) {
  LineClient client = parked_client("hi\n");
  HttpReply first = post("/api/attach", Json{{"to", client.local_address()}});
  ASSERT_EQ(first.status, 200);
  {
    LineClient events = open_events(first.body["session"]);
    EXPECT_EQ(next_event(events).first, "data");
  }  // the tab closes
  auto deadline = std::chrono::steady_clock::now() + 5s;
  HttpReply again;
  do {
    again = post("/api/attach", Json{{"to", client.local_address()}});
  } while (again.status == 409 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(again.status, 200) << again.body.dump();
}

TEST_F(HttpAttachTest, ClientLeavingEndsTheSession) {
  LineClient client = parked_client("bye\n");
  HttpReply attached = post("/api/attach", Json{{"to", client.local_address()}});
  ASSERT_EQ(attached.status, 200);
  std::string session = attached.body["session"];
  LineClient events = open_events(session);
  EXPECT_EQ(next_event(events).first, "data");
  ::shutdown(client.fd(), SHUT_WR);  // the client leaves (what it sent has been taken)
  std::string type;
  Json data;
  for (int i = 0; i < 3 && type != "closed"; ++i) std::tie(type, data) = next_event(events);
  EXPECT_EQ(type, "closed");
  EXPECT_FALSE(data.value("reason", "").empty()) << data.dump();
  std::string rest;
  EXPECT_EQ(events.read_to_end(&rest), StreamEnd::eof);
  EXPECT_EQ(post("/api/attach/say", Json{{"session", session}, {"text", "x"}}).status, 404);
}

TEST_F(HttpAttachTest, RefusalsTokenSessionAndNonHubClients) {
  LineClient client = parked_client("hi\n");
  EXPECT_EQ(post("/api/attach", Json{{"to", client.local_address()}}, false).status, 401);
  LineClient echo(connect_to(echo_engine_->endpoints().front()));
  echo.send("x\n");
  ASSERT_EQ(echo.read_line(), "x");
  HttpReply not_hub = post("/api/attach", Json{{"to", echo.local_address()}});
  EXPECT_EQ(not_hub.status, 400);
  EXPECT_NE(not_hub.body.value("error", "").find("not a hub client"), std::string::npos);
  EXPECT_EQ(post("/api/attach", Json{{"to", "127.0.0.1:1"}}).status, 404);

  LineClient wrong(connect_to(endpoint_));
  wrong.send(head("GET", "/api/attach/events?session=0123456789abcdef0123456789abcdef") + "\r\n");
  auto status = wrong.read_line();
  EXPECT_TRUE(status && status->find(" 404 ") != std::string::npos) << status.value_or("EOF");
}

}  // namespace
}  // namespace keel::test
