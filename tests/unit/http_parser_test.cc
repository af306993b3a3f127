// The HTTP endpoint's request parser: complete requests, pipelining, limits (431, 413), bodies
// by Content-Length only (411 for Transfer-Encoding), malformed input (400), keep-alive rules.
#include <gtest/gtest.h>

#include "services/http/request_parser.h"
#include "services/http/response.h"
#include "services/http/router.h"

namespace keel::http {
namespace {

using Status = ParseResult::Status;

ParseResult parse(std::string_view bytes, Request& out, Limits limits = {}) {
  return parse_request(bytes, limits, out);
}

TEST(HttpParser, ParsesASimpleGet) {
  Request r;
  std::string text =
      "GET /api/clients?service=chat&q=a%20b HTTP/1.1\r\nHost: x\r\nX-A:  v \r\n\r\n";
  ParseResult p = parse(text, r);
  ASSERT_EQ(p.status, Status::complete) << p.error;
  EXPECT_EQ(p.consumed, text.size());
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/api/clients");
  EXPECT_EQ(r.query, "service=chat&q=a%20b");
  ASSERT_NE(r.header("x-a"), nullptr);
  EXPECT_EQ(*r.header("x-a"), "v");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(query_param(r.query, "service"), "chat");
  EXPECT_EQ(query_param(r.query, "q"), "a b");
  EXPECT_EQ(query_param(r.query, "limit"), std::nullopt);
}

TEST(HttpParser, NeedsMoreUntilTheHeadAndBodyAreIn) {
  std::string text = "POST /api/kick HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"id\":17}";
  for (size_t n = 0; n < text.size(); ++n) {
    Request r;
    EXPECT_EQ(parse(text.substr(0, n), r).status, Status::need_more) << n;
  }
  Request r;
  ParseResult p = parse(text, r);
  ASSERT_EQ(p.status, Status::complete);
  EXPECT_EQ(r.body, "{\"id\":17}");
}

TEST(HttpParser, PipelinedRequestsAreTakenOneAtATime) {
  std::string one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string two = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string all = one + two + "GET /par";
  Request r;
  ParseResult p = parse(all, r);
  ASSERT_EQ(p.status, Status::complete);
  EXPECT_EQ(p.consumed, one.size());
  EXPECT_EQ(r.path, "/healthz");
  p = parse(std::string_view(all).substr(one.size()), r);
  ASSERT_EQ(p.status, Status::complete);
  EXPECT_EQ(r.path, "/readyz");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_EQ(parse(std::string_view(all).substr(one.size() + two.size()), r).status,
            Status::need_more);
}

TEST(HttpParser, BareLineFeedsAndHttp10) {
  Request r;
  ASSERT_EQ(parse("GET / HTTP/1.0\n\n", r).status, Status::complete);
  EXPECT_FALSE(r.keep_alive);  // 1.0 closes unless asked
  ASSERT_EQ(parse("GET / HTTP/1.0\nConnection: Keep-Alive\n\n", r).status, Status::complete);
  EXPECT_TRUE(r.keep_alive);
}

TEST(HttpParser, HeadOverTheLimitIs431EvenBeforeItEnds) {
  Limits limits;
  limits.max_head_bytes = 64;
  Request r;
  std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(100, 'a');
  ParseResult p = parse(big, r, limits);
  EXPECT_EQ(p.status, Status::error);
  EXPECT_EQ(p.http_status, 431);
  p = parse(big + "\r\n\r\n", r, limits);
  EXPECT_EQ(p.http_status, 431);
  // The default: 8 KiB.
  p = parse("GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", r);
  EXPECT_EQ(p.http_status, 431);
}

TEST(HttpParser, TooManyHeaderFieldsIs431) {
  std::string text = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 101; ++i) text += "X" + std::to_string(i) + ": y\r\n";
  Request r;
  EXPECT_EQ(parse(text + "\r\n", r).http_status, 431);
}

TEST(HttpParser, BodyOverTheLimitIs413AtOnce) {
  Request r;
  ParseResult p = parse("POST /api/send HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n", r);
  EXPECT_EQ(p.status, Status::error);
  EXPECT_EQ(p.http_status, 413);
  p = parse("POST /api/send HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n", r);
  EXPECT_EQ(p.status, Status::need_more);  // exactly the limit is fine
}

TEST(HttpParser, TransferEncodingIs411) {
  Request r;
  ParseResult p =
      parse("POST /api/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", r);
  EXPECT_EQ(p.http_status, 411);
}

TEST(HttpParser, MalformedInputIs400) {
  const char* bad[] = {
      "GET\r\n\r\n",
      "GET /\r\n\r\n",
      "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTX/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",  // no Host
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (const char* text : bad) {
    Request r;
    ParseResult p = parse(text, r);
    EXPECT_EQ(p.status, Status::error) << text;
    EXPECT_EQ(p.http_status, 400) << text;
    EXPECT_FALSE(p.error.empty());
  }
  Request r;
  EXPECT_EQ(parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n", r).http_status, 505);
}

TEST(HttpParser, PercentDecoding) {
  EXPECT_EQ(percent_decode("a%2Fb+c", true), "a/b c");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
  EXPECT_EQ(percent_decode("%zz", true), std::nullopt);
  EXPECT_EQ(percent_decode("%2", true), std::nullopt);
  EXPECT_EQ(percent_decode("%", true), std::nullopt);
  EXPECT_EQ(query_param("a=1&b&c=%41", "b"), "");
  EXPECT_EQ(query_param("a=1&b&c=%41", "c"), "A");
}

TEST(HttpResponse, SerializesWithLengthAndClose) {
  Response r = text_response(404, "gone");
  r.close = true;
  std::string wire = serialize(r, false);
  EXPECT_TRUE(wire.starts_with("HTTP/1.1 404 Not Found\r\n")) << wire;
  EXPECT_NE(wire.find("Content-Length: 5\r\n"), std::string::npos);
  EXPECT_NE(wire.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(wire.ends_with("\r\n\r\ngone\n"));
  EXPECT_TRUE(serialize(r, true).ends_with("\r\n\r\n"));  // HEAD: no body
}

TEST(HttpRouter, NotFoundMethodNotAllowedAndHead) {
  Router router;
  router.add("GET", "/x", [](const Request&) { return text_response(200, "x"); });
  Request r;
  r.method = "GET";
  r.path = "/y";
  EXPECT_EQ(router.dispatch(r).status, 404);
  r.path = "/x";
  EXPECT_EQ(router.dispatch(r).status, 200);
  r.method = "HEAD";
  EXPECT_EQ(router.dispatch(r).status, 200);
  r.method = "POST";
  Response denied = router.dispatch(r);
  EXPECT_EQ(denied.status, 405);
  ASSERT_FALSE(denied.headers.empty());
  EXPECT_EQ(denied.headers[0].second, "GET, HEAD");
}

}  // namespace
}  // namespace keel::http
