// keel ctl watch's display: escaping of what clients send (they must never drive the operator's
// terminal) and the lines each watch event becomes.
#include "cli/watch_format.h"

#include <gtest/gtest.h>

#include <string>

namespace keel::cli {
namespace {

using Json = nlohmann::ordered_json;

TEST(WatchFormat, PrintableTextAndUtf8StayAsTheyAre) {
  EXPECT_EQ(escape_bytes("hello, world"), "hello, world");
  EXPECT_EQ(escape_bytes("gr\xc3\xbc\xc3\x9f dich \xe2\x82\xac \xf0\x9f\x98\x80"),
            "gr\xc3\xbc\xc3\x9f dich \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(WatchFormat, ControlCharactersAreEscaped) {
  EXPECT_EQ(escape_bytes("a\tb\r\n"), "a\\tb\\r\\n");
  EXPECT_EQ(escape_bytes(std::string("\x1b[2J\x07\x00\x7f", 7)), "\\x1b[2J\\x07\\x00\\x7f");
  EXPECT_EQ(escape_bytes("back\\slash"), "back\\\\slash");
}

TEST(WatchFormat, InvalidUtf8AndC1ControlsAreEscaped) {
  EXPECT_EQ(escape_bytes("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escape_bytes("\xc3"), "\\xc3");                    // truncated sequence
  EXPECT_EQ(escape_bytes("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(escape_bytes("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(escape_bytes("\xc2\x9b"
                         "31m"),
            "\\xc2\\x9b31m");  // C1 CSI
}

TEST(WatchFormat, DataEventIsOneLinePerLineWithTimeAndDirection) {
  // "hi\nthere\r\n" and "tail" in base64
  Json in{{"event", "data"},
          {"dir", "in"},
          {"at", "2026-11-28T20:31:02.123Z"},
          {"data", "aGkKdGhlcmUNCg=="},
          {"bytes", 10}};
  EXPECT_EQ(render_watch_event(in), "20:31:02.123 < hi\n20:31:02.123 < there\n");
  Json out{
      {"event", "data"}, {"dir", "out"}, {"at", "2026-11-28T20:31:02.124Z"}, {"data", "dGFpbA=="}};
  EXPECT_EQ(render_watch_event(out), "20:31:02.124 > tail\n");
}

TEST(WatchFormat, DataEventEscapesWhatTheClientSent) {
  // "\x1b]0;owned\x07" in base64
  Json ev{{"event", "data"},
          {"dir", "in"},
          {"at", "2026-11-28T00:00:00.000Z"},
          {"data", "G10wO293bmVkBw=="}};
  EXPECT_EQ(render_watch_event(ev), "00:00:00.000 < \\x1b]0;owned\\x07\n");
}

TEST(WatchFormat, SkippedAndClosedEvents) {
  EXPECT_EQ(render_watch_event(Json{{"event", "skipped"}, {"bytes", "4096"}, {"at", "x"}}),
            "x ! 4096 bytes skipped (the watcher fell behind)\n");
  EXPECT_EQ(render_watch_event(Json{{"event", "skipped"}, {"bytes", 7}}),
            "- ! 7 bytes skipped (the watcher fell behind)\n");
  EXPECT_EQ(
      render_watch_event(Json{
          {"event", "closed"}, {"reason", "closed by peer\n"}, {"at", "2026-11-28T20:31:05.000Z"}}),
      "20:31:05.000 = client closed: closed by peer\\n\n");
}

TEST(WatchFormat, UnknownOrMalformedEventsShowNothing) {
  EXPECT_EQ(render_watch_event(Json{{"event", "future"}}), "");
  EXPECT_EQ(render_watch_event(Json{{"event", "data"}, {"dir", "in"}}), "");
  EXPECT_EQ(render_watch_event(Json{{"no", "event"}}), "");
  EXPECT_EQ(render_watch_event(Json{{"event", 3}}), "");
}

}  // namespace
}  // namespace keel::cli
