// keel serve --http: every route of the HTTP endpoint against a live server as a user (or
// Prometheus, or the dashboard) would reach it: health and readiness (also while draining),
// stats and clients JSON with filters, metrics, bad requests (400/411/413/431 with a close),
// keep-alive and pipelining, the token and same-origin rules of the state-changing routes,
// Server-Sent Events, and the loopback-only rule.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "e2e/http_client.h"
#include "e2e/subprocess.h"

namespace keel::test {
namespace {

using Json = nlohmann::json;
const std::string kKeel = KEEL_BINARY;

// keel serve with echo, chat and HTTP on port 0; the ports and the generated token from its log.
struct Server {
  explicit Server(std::vector<std::string> extra = {}) : process(args(std::move(extra))) {
    auto h = process.wait_for_stderr(R"(http listening on 127\.0\.0\.1:(\d+))");
    auto e = process.wait_for_stderr(R"(echo listening on 127\.0\.0\.1:(\d+))");
    auto c = process.wait_for_stderr(R"(chat listening on 127\.0\.0\.1:(\d+))");
    if (h) http = std::stoi(*h);
    if (e) echo = std::stoi(*e);
    if (c) chat = std::stoi(*c);
    if (auto t = process.wait_for_stderr(R"(#token=([0-9a-f]+))", std::chrono::seconds(1)))
      token = *t;
  }
  static std::vector<std::string> args(std::vector<std::string> extra) {
    std::vector<std::string> a = {
        kKeel,         "serve",       "--echo",          "127.0.0.1:0", "--chat",
        "127.0.0.1:0", "--hub",       "127.0.0.1:0",     "--admin",     "none",
        "--http",      "127.0.0.1:0", "--drain-timeout", "10"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::string auth() const { return "Authorization: Bearer " + token + "\r\n"; }
  Fd connect(int port) const {
    return connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(port)));
  }

  Subprocess process;
  int http = 0, echo = 0, chat = 0;
  std::string token;
};

Json json_of(const HttpReply& r) {
  return Json::parse(r.body, nullptr, false);
}

// The id of the only client of service at client's address (ids may be 0).
std::optional<uint64_t> client_id(const Server& s, const std::string& service, const Fd& client) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(client.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  std::string peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).to_string();
  std::optional<uint64_t> id;
  eventually([&] {
    Json list = json_of(http_get(s.http, "/api/clients?service=" + service + "&q=" + peer));
    if (!list.is_object() || list["clients"].size() != 1) return false;
    id = list["clients"][0]["id"].get<uint64_t>();
    return true;
  });
  return id;
}

TEST(Http, HealthReadinessStatsAndThePage) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  EXPECT_FALSE(s.token.empty()) << "the generated token is logged in the dashboard URL";
  HttpReply health = http_get(s.http, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  EXPECT_EQ(http_get(s.http, "/readyz").status, 200);
  HttpReply stats = http_get(s.http, "/api/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.header("content-type"), "application/json");
  Json j = json_of(stats);
  ASSERT_TRUE(j.is_object()) << stats.body;
  EXPECT_EQ(j["ok"], true);
  ASSERT_EQ(j["services"].size(), 3u);
  EXPECT_EQ(j["services"][0]["service"], "echo");
  EXPECT_EQ(j["services"][1]["service"], "chat");
  EXPECT_EQ(j["services"][2]["service"], "hub");
  HttpReply page = http_get(s.http, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_TRUE(page.header("content-type").starts_with("text/html"));
  EXPECT_EQ(http_get(s.http, "/nope").status, 404);
  HttpReply wrong = http_request(s.http, "DELETE", "/api/stats");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.header("allow"), "GET, HEAD");
  HttpReply head = http_request(s.http, "HEAD", "/healthz");
  EXPECT_EQ(head.status, 200);
}

TEST(Http, ClientsAreListedAndFiltered) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  Fd e1 = s.connect(s.echo), e2 = s.connect(s.echo), c1 = s.connect(s.chat);
  ASSERT_TRUE(e1.valid() && e2.valid() && c1.valid());
  ASSERT_TRUE(eventually([&] { return json_of(http_get(s.http, "/api/clients"))["total"] == 3; }));
  Json echo = json_of(http_get(s.http, "/api/clients?service=echo"));
  EXPECT_EQ(echo["total"], 2);
  for (const Json& row : echo["clients"]) EXPECT_EQ(row["service"], "echo");
  Json limited = json_of(http_get(s.http, "/api/clients?limit=1"));
  EXPECT_EQ(limited["clients"].size(), 1u);
  EXPECT_EQ(limited["total"], 3);
  EXPECT_EQ(limited["truncated"], true);
  EXPECT_TRUE(client_id(s, "chat", c1));
  EXPECT_EQ(http_get(s.http, "/api/clients?limit=x").status, 400);
  // The same rows as the admin `list` reply.
  Json row = json_of(http_get(s.http, "/api/clients?service=chat"))["clients"][0];
  for (const char* key :
       {"id", "service", "peer", "state", "connected_since", "bytes_in", "bytes_out", "queued"})
    EXPECT_TRUE(row.contains(key)) << key;
}

// A reply with Connection: close, then the server's FIN.
void expect_closing_reply(const Server& s, const std::string& bytes, int status) {
  Fd fd = s.connect(s.http);
  ASSERT_TRUE(write_all(fd.get(), bytes));
  std::string rest;
  HttpReply r = read_http_reply(fd.get(), rest);
  EXPECT_EQ(r.status, status) << bytes.substr(0, 80);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_EQ(read_until_end(fd.get(), &rest), StreamEnd::eof);
}

TEST(Http, BadRequestsAreAnsweredAndClosed) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  expect_closing_reply(s, "GARBAGE\r\n\r\n", 400);
  expect_closing_reply(s, "GET / HTTP/1.1\r\n\r\n", 400);  // no Host
  expect_closing_reply(s, "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(9000, 'a') + "\r\n\r\n",
                       431);
  // 431 before the head ends: the server does not wait for more.
  expect_closing_reply(s, "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(9000, 'a'), 431);
  expect_closing_reply(s, "POST /api/send HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n",
                       413);
  expect_closing_reply(
      s, "POST /api/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411);
  // The server is still fine.
  EXPECT_EQ(http_get(s.http, "/healthz").status, 200);
}

TEST(Http, KeepAliveAndPipelining) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  Fd fd = s.connect(s.http);
  std::string rest;
  ASSERT_TRUE(write_all(fd.get(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(read_http_reply(fd.get(), rest).status, 200);
  ASSERT_TRUE(write_all(fd.get(),
                        "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  HttpReply a = read_http_reply(fd.get(), rest);
  HttpReply b = read_http_reply(fd.get(), rest);
  HttpReply c = read_http_reply(fd.get(), rest);
  EXPECT_EQ(a.body, "ready\n");
  EXPECT_EQ(json_of(b)["ok"], true);
  EXPECT_EQ(c.status, 404);
  EXPECT_EQ(c.header("connection"), "close");
  EXPECT_EQ(read_until_end(fd.get(), &rest), StreamEnd::eof);
  EXPECT_EQ(rest, "");
}

TEST(Http, StateChangingRequestsNeedTheTokenAndTheSameOrigin) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  Fd victim = s.connect(s.echo);
  std::optional<uint64_t> found = client_id(s, "echo", victim);
  ASSERT_TRUE(found);
  uint64_t id = *found;
  const std::string json = "Content-Type: application/json\r\n";
  const std::string body = "{\"id\":" + std::to_string(id) + "}";
  EXPECT_EQ(http_request(s.http, "POST", "/api/kick", json, body).status, 401);
  EXPECT_EQ(http_request(s.http, "POST", "/api/kick",
                         json + "Authorization: Bearer wrong" + s.token + "\r\n", body)
                .status,
            401);
  EXPECT_EQ(http_request(s.http, "POST", "/api/kick",
                         json + s.auth() + "Origin: http://evil.example\r\n", body)
                .status,
            403);
  EXPECT_EQ(http_request(s.http, "POST", "/api/kick",
                         json + s.auth() + "Sec-Fetch-Site: cross-site\r\n", body)
                .status,
            403);
  EXPECT_EQ(http_request(s.http, "POST", "/api/kick", s.auth(), body).status, 415);
  EXPECT_EQ(http_request(s.http, "GET", "/api/kick").status, 405);
  // Nothing above touched the client.
  EXPECT_EQ(round_trip(victim.get(), "still here"), "still here");
  // The page's own request: same origin, with the token.
  HttpReply ok =
      http_request(s.http, "POST", "/api/kick",
                   json + s.auth() + "Origin: http://127.0.0.1:" + std::to_string(s.http) +
                       "\r\nSec-Fetch-Site: same-origin\r\n",
                   body);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(json_of(ok), (Json{{"ok", true}, {"kicked", id}}));
  EXPECT_EQ(read_until_end(victim.get()), StreamEnd::eof);
  victim.reset();  // our FIN: the kicked connection ends
  HttpReply gone;
  EXPECT_TRUE(eventually([&] {
    gone = http_request(s.http, "POST", "/api/kick", json + s.auth(), body);
    return gone.status == 404;
  })) << gone.status
      << " " << gone.body;
  EXPECT_EQ(json_of(gone)["ok"], false);
  EXPECT_EQ(http_request(s.http, "POST", "/api/kick", json + s.auth(), "{").status, 400);
}

TEST(Http, SendAndBroadcastReachTheClients) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  Fd echo = s.connect(s.echo);
  std::optional<uint64_t> found = client_id(s, "echo", echo);
  ASSERT_TRUE(found);
  uint64_t id = *found;
  const std::string h = "Content-Type: application/json\r\n" + s.auth();
  HttpReply sent = http_request(s.http, "POST", "/api/send", h,
                                "{\"to\":" + std::to_string(id) + ",\"text\":\"hello\"}");
  ASSERT_EQ(sent.status, 200) << sent.body;
  EXPECT_EQ(json_of(sent)["sent_to"], Json::array({id}));
  EXPECT_EQ(read_exactly(echo.get(), 6), "hello\n");
  HttpReply all = http_request(s.http, "POST", "/api/broadcast", h,
                               "{\"service\":\"echo\",\"text\":\"to all\"}");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(json_of(all)["recipients"], 1);
  EXPECT_EQ(read_exactly(echo.get(), 7), "to all\n");
  EXPECT_EQ(http_request(s.http, "POST", "/api/send", h, "{\"to\":1,\"text\":\"a\\nb\"}").status,
            400);
}

TEST(Http, EventStreamDeliversStatsEverySecond) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  Fd fd = s.connect(s.http);
  ASSERT_TRUE(write_all(fd.get(), "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got;
  auto events = [&] {
    size_t n = 0;
    for (size_t at = got.find("event: stats\ndata: "); at != std::string::npos;
         at = got.find("event: stats\ndata: ", at + 1))
      ++n;
    return n;
  };
  char buf[65536];
  ASSERT_TRUE(eventually(
      [&] {
        ssize_t n = read_some(fd.get(), buf, sizeof buf);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        return events() >= 2;
      },
      std::chrono::seconds(5)))
      << got;
  EXPECT_TRUE(got.starts_with("HTTP/1.1 200 OK\r\n")) << got;
  EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_NE(got.find("\r\n\r\nretry: 2000\n\n"), std::string::npos);
  size_t at = got.find("data: ") + 6;
  Json event = Json::parse(got.substr(at, got.find('\n', at) - at), nullptr, false);
  ASSERT_TRUE(event.is_object());
  EXPECT_GT(event["time"].get<double>(), 1.7e9);
  ASSERT_EQ(event["services"].size(), 3u);
  EXPECT_TRUE(event["services"][0].contains("closed"));
  EXPECT_TRUE(event["services"][0].contains("connections"));
}

TEST(Http, ReadyzIsNotReadyWhileDraining) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  Fd echo = s.connect(s.echo);  // echo finishes its clients' work on SIGTERM: the drain waits
  ASSERT_EQ(round_trip(echo.get(), "x"), "x");
  EXPECT_EQ(http_get(s.http, "/readyz").status, 200);
  s.process.signal(SIGTERM);
  ASSERT_TRUE(s.process.wait_for_stderr("draining 1 connection"));
  HttpReply draining = http_get(s.http, "/readyz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, "draining\n");
  EXPECT_EQ(http_get(s.http, "/healthz").status, 200);
  echo.reset();
  EXPECT_EQ(s.process.wait(), 0);
}

TEST(Http, NonLoopbackNeedsATokenFile) {
  CommandRun refused =
      run_keel({"echo", "--listen", "127.0.0.1:0", "--admin", "none", "--http", "0.0.0.0:0"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("not a loopback address"), std::string::npos) << refused.err;
  TempDir dir;
  std::string file = dir.path() + "/token";
  std::ofstream(file) << "s3cret\n";
  Subprocess p({kKeel, "echo", "--listen", "127.0.0.1:0", "--admin", "none", "--http", "0.0.0.0:0",
                "--http-token-file", file});
  auto port = p.wait_for_stderr(R"(http listening on 0\.0\.0\.0:(\d+))");
  ASSERT_TRUE(port) << p.err();
  EXPECT_EQ(p.err().find("#token="), std::string::npos) << "a token from a file is not logged";
  int http = std::stoi(*port);
  EXPECT_EQ(http_get(http, "/api/stats").status, 401);
  EXPECT_EQ(http_get(http, "/metrics").status, 401);
  EXPECT_EQ(http_get(http, "/api/stats", "Authorization: Bearer s3cret\r\n").status, 200);
  EXPECT_EQ(http_get(http, "/healthz").status, 200);
}

// The value of one sample ("name{labels}") in a metrics text; nullopt when absent.
std::optional<double> sample(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(Http, MetricsPassPromtoolAndCountWhatHappened) {
  Server s;
  ASSERT_NE(s.http, 0) << s.process.err();
  {  // an echo client that comes and goes: its bytes stay counted
    Fd gone = s.connect(s.echo);
    ASSERT_EQ(round_trip(gone.get(), "12345"), "12345");
  }
  Fd echo = s.connect(s.echo);
  ASSERT_EQ(round_trip(echo.get(), "abc"), "abc");
  Fd chat = s.connect(s.chat);
  ASSERT_TRUE(write_all(chat.get(), "/nick ann\n/join #a\nhello\n"));
  std::string metrics;
  ASSERT_TRUE(eventually([&] {
    metrics = http_get(s.http, "/metrics").body;
    return sample(metrics, R"(keel_closed_total{service="echo",reason="finished"})") == 1 &&
           sample(metrics, R"(keel_received_messages_total{service="chat"})") == 3;
  })) << metrics;
  CommandRun check = run_command({"/usr/bin/promtool", "check", "metrics"}, metrics);
  EXPECT_EQ(check.code, 0) << check.out << check.err;
  EXPECT_EQ(sample(metrics, R"(keel_connections{service="echo",state="open"})"), 1);
  EXPECT_EQ(sample(metrics, R"(keel_connections{service="chat",state="open"})"), 1);
  EXPECT_EQ(sample(metrics, R"(keel_accepted_total{service="echo"})"), 2);
  EXPECT_EQ(sample(metrics, R"(keel_received_bytes_total{service="echo"})"), 8);
  EXPECT_EQ(sample(metrics, R"(keel_sent_bytes_total{service="echo"})"), 8);
  EXPECT_EQ(sample(metrics, R"(keel_received_messages_total{service="echo"})"), 2);
  EXPECT_EQ(sample(metrics, R"(keel_received_bytes_total{service="chat"})"), 25);
  EXPECT_EQ(sample(metrics, R"(keel_rejected_total{service="echo",reason="over_cap"})"), 0);
  EXPECT_EQ(sample(metrics, R"(keel_slow_consumer_drops_total{service="chat"})"), 0);
  EXPECT_EQ(sample(metrics, R"(keel_queued_output_bytes{service="echo"})"), 0);
  EXPECT_GT(sample(metrics, R"(keel_loop_turn_seconds_count{loop="0"})").value_or(0), 0);
  EXPECT_EQ(sample(metrics, R"(keel_loop_turn_seconds_bucket{loop="0",le="+Inf"})"),
            sample(metrics, R"(keel_loop_turn_seconds_count{loop="0"})"));
  EXPECT_GT(sample(metrics, "process_resident_memory_bytes").value_or(0), 1e6);
  EXPECT_GT(sample(metrics, "process_open_fds").value_or(0), 5);
  for (const char* family : {"keel_closed_total", "keel_sent_messages_total",
                             "keel_http_event_streams", "keel_open_failures_total"})
    EXPECT_NE(metrics.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  // The admin stats reply over HTTP has the same totals.
  Json stats = json_of(http_get(s.http, "/api/stats"));
  EXPECT_EQ(stats["services"][0]["bytes_in"], 8);
  EXPECT_EQ(stats["services"][1]["messages_in"], 3);
}

}  // namespace
}  // namespace keel::test
