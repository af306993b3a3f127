// The admin protocol's pure pieces: line framing with a size cap, the token comparison, client
// ids, loopback checks, timestamps; and how keel ctl renders replies.
#include "admin/admin_protocol.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "cli/ctl.h"

namespace keel::admin {
namespace {

using Status = LineFramer::Status;

TEST(LineFramer, SplitsLinesAcrossFeeds) {
  LineFramer f(100);
  std::string line;
  f.feed("{\"a\":1}\n{\"b\"");
  ASSERT_EQ(f.next(line), Status::line);
  EXPECT_EQ(line, "{\"a\":1}");
  EXPECT_EQ(f.next(line), Status::need_more);
  f.feed(":2}\r\n\n");
  ASSERT_EQ(f.next(line), Status::line);
  EXPECT_EQ(line, "{\"b\":2}");  // "\r\n" ends a line too
  ASSERT_EQ(f.next(line), Status::line);
  EXPECT_EQ(line, "");
  EXPECT_EQ(f.next(line), Status::need_more);
  EXPECT_EQ(f.buffered_bytes(), 0u);
}

TEST(LineFramer, LineOfExactlyTheMaximumIsAccepted) {
  LineFramer f(4);
  std::string line;
  f.feed("abcd\n");
  ASSERT_EQ(f.next(line), Status::line);
  EXPECT_EQ(line, "abcd");
}

TEST(LineFramer, LongerLineIsTooLongWithOrWithoutItsNewline) {
  std::string line;
  LineFramer with_newline(4);
  with_newline.feed("abcde\n");
  EXPECT_EQ(with_newline.next(line), Status::too_long);
  LineFramer without(4);
  without.feed("abcd");
  EXPECT_EQ(without.next(line), Status::need_more);
  without.feed("e");
  EXPECT_EQ(without.next(line), Status::too_long);  // can only get longer
}

TEST(LineFramer, RestWithoutNewline) {
  LineFramer f(100);
  std::string line;
  f.feed("one\ntwo");
  ASSERT_EQ(f.next(line), Status::line);
  EXPECT_EQ(f.next(line), Status::need_more);
  ASSERT_TRUE(f.take_rest(line));
  EXPECT_EQ(line, "two");
  EXPECT_FALSE(f.take_rest(line));
}

TEST(ConstantTimeEqual, OnlyTheExactTokenMatches) {
  EXPECT_TRUE(constant_time_equal("s3cret", "s3cret"));
  EXPECT_FALSE(constant_time_equal("s3cre", "s3cret"));
  EXPECT_FALSE(constant_time_equal("s3cret!", "s3cret"));
  EXPECT_FALSE(constant_time_equal("S3cret", "s3cret"));
  EXPECT_FALSE(constant_time_equal("", "s3cret"));
  EXPECT_FALSE(constant_time_equal(std::string("s3cret\0", 7), "s3cret"));
}

TEST(ParseClientId, DigitsOnly) {
  EXPECT_EQ(parse_client_id("0"), 0u);
  EXPECT_EQ(parse_client_id("17"), 17u);
  EXPECT_EQ(parse_client_id("18446744073709551615"), ~uint64_t{0});
  EXPECT_FALSE(parse_client_id("18446744073709551616"));  // overflow
  EXPECT_FALSE(parse_client_id(""));
  EXPECT_FALSE(parse_client_id("-1"));
  EXPECT_FALSE(parse_client_id("+1"));
  EXPECT_FALSE(parse_client_id("1 "));
  EXPECT_FALSE(parse_client_id("127.0.0.1:5555"));
}

TEST(IsLoopback, OnlyLoopbackAddresses) {
  EXPECT_TRUE(is_loopback(Endpoint::parse("127.0.0.1:9000")));
  EXPECT_TRUE(is_loopback(Endpoint::parse("127.1.2.3:9000")));
  EXPECT_TRUE(is_loopback(Endpoint::parse("[::1]:9000")));
  EXPECT_TRUE(is_loopback(Endpoint::parse("[::ffff:127.0.0.1]:9000")));
  EXPECT_FALSE(is_loopback(Endpoint::parse("0.0.0.0:9000")));
  EXPECT_FALSE(is_loopback(Endpoint::parse(":9000")));
  EXPECT_FALSE(is_loopback(Endpoint::parse("10.0.0.1:9000")));
  EXPECT_FALSE(is_loopback(Endpoint::parse("[::]:9000")));
  EXPECT_FALSE(is_loopback(Endpoint::parse("unix:/tmp/x.sock")));
}

TEST(UtcTimestamp, Iso8601WithZ) {
  auto t = std::chrono::system_clock::from_time_t(1795388941);  // 2026-11-22T23:09:01Z
  EXPECT_EQ(utc_timestamp(t), "2026-11-22T23:09:01Z");
}

using Json = nlohmann::ordered_json;

TEST(CtlRender, ListTableShowsDashForMissingNickAndRoom) {
  Json reply = Json::parse(R"({"ok":true,"clients":[
    {"id":17,"service":"echo","peer":"127.0.0.1:5555","state":"open",
     "connected_since":"2026-11-22T23:09:01Z","connected_s":12.3,"bytes_in":10,"bytes_out":20,
     "queued":0},
    {"id":4294967296,"service":"chat","peer":"127.0.0.1:6000","state":"open",
     "connected_since":"2026-11-22T23:10:00Z","connected_s":1.0,"bytes_in":1,"bytes_out":2,
     "queued":3,"nick":"alice","room":"#lobby"}]})");
  std::string want =
      "ID          SERVICE  PEER            NICK   ROOM    SINCE                 IN  OUT  QUEUED\n"
      "17          echo     127.0.0.1:5555  -      -       2026-11-22T23:09:01Z  10  20   0\n"
      "4294967296  chat     127.0.0.1:6000  alice  #lobby  2026-11-22T23:10:00Z  1   2    3\n";
  EXPECT_EQ(cli::render_reply("list", reply), want);
}

TEST(CtlRender, ControlCharactersInAValueStayOnTheirRow) {
  // Found with tests/fuzz/ctl_reply_fuzz: a "\n" in a value printed a line of its own (a forged
  // row), and an escape sequence reached the operator's terminal.
  Json reply = Json::parse(R"({"ok":true,"clients":[
    {"id":17,"service":"echo","peer":"127.0.0.1:5555","nick":"a\nb\u001b[2J\u007f"}]})");
  std::string out = cli::render_reply("list", reply);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_NE(out.find("a?b?[2J?"), std::string::npos) << out;
  Json stats = Json::parse(R"({"ok":true,"services":[{"service":"e\r","endpoints":["x\ny"]}]})");
  out = cli::render_reply("stats", stats);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3) << out;
  EXPECT_NE(out.find("e?  "), std::string::npos) << out;
  EXPECT_NE(out.find("x?y"), std::string::npos) << out;
}

TEST(CtlRender, OneLineForTheOtherCommands) {
  EXPECT_EQ(cli::render_reply("send", Json::parse(R"({"ok":true,"sent_to":[17]})")),
            "sent to 17\n");
  EXPECT_EQ(cli::render_reply("broadcast", Json::parse(R"({"ok":true,"recipients":1})")),
            "sent to 1 client\n");
  EXPECT_EQ(cli::render_reply("broadcast", Json::parse(R"({"ok":true,"recipients":0})")),
            "sent to 0 clients\n");
  EXPECT_EQ(cli::render_reply("kick", Json::parse(R"({"ok":true,"kicked":17})")), "kicked 17\n");
}

TEST(CtlRender, StatsTable) {
  Json reply = Json::parse(R"({"ok":true,"uptime_s":12.5,"rss_kib":4096,"services":[
    {"service":"echo","endpoints":["127.0.0.1:7000","unix:/tmp/e.sock"],"connections":2,
     "accepted":5,"rejected_over_cap":0,"rejected_per_ip":7,"accept_errors":1,"fd_exhaustion":0,
     "open_failures":3}]})");
  std::string want =
      "uptime 12.5 s, rss 4096 KiB\n"
      "SERVICE  ENDPOINTS                        CONNECTIONS  ACCEPTED  REJECTED  REJECTED_PER_IP  "
      "ACCEPT_ERRORS  FD_EXHAUSTION  OPEN_FAILED\n"
      "echo     127.0.0.1:7000,unix:/tmp/e.sock  2            5         0         7                "
      "1              0              3\n";
  EXPECT_EQ(cli::render_reply("stats", reply), want);
}

}  // namespace
}  // namespace keel::admin
