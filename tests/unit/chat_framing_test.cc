#include <gtest/gtest.h>

#include <string>

#include "services/chat/chat_service.h"
#include "services/chat/framing.h"

namespace keel::chat {
namespace {

Buffer buffer_of(std::string_view s) {
  Buffer b;
  b.append(s);
  return b;
}

TEST(ChatFraming, LinesAcceptLfAndCrlfAndKeepTheRest) {
  Buffer in = buffer_of("hello\r\nworld\npart");
  std::string out;
  ASSERT_EQ(decode(Framing::lines, in, 100, out), DecodeStatus::message);
  EXPECT_EQ(out, "hello");
  ASSERT_EQ(decode(Framing::lines, in, 100, out), DecodeStatus::message);
  EXPECT_EQ(out, "world");
  EXPECT_EQ(decode(Framing::lines, in, 100, out), DecodeStatus::need_more);
  EXPECT_EQ(in.view(), "part");
}

TEST(ChatFraming, LinesAreBoundedWithOrWithoutNewline) {
  std::string out;
  Buffer exact = buffer_of(std::string(10, 'x') + "\r\n");
  EXPECT_EQ(decode(Framing::lines, exact, 10, out), DecodeStatus::message);
  Buffer over = buffer_of(std::string(11, 'x') + "\n");
  EXPECT_EQ(decode(Framing::lines, over, 10, out), DecodeStatus::too_long);
  Buffer partial_ok = buffer_of(std::string(10, 'x') + "\r");  // could still end in "\n"
  EXPECT_EQ(decode(Framing::lines, partial_ok, 10, out), DecodeStatus::need_more);
  Buffer endless = buffer_of(std::string(12, 'x'));  // no newline can make this fit
  EXPECT_EQ(decode(Framing::lines, endless, 10, out), DecodeStatus::too_long);
}

TEST(ChatFraming, LengthFramesNeedHeaderAndPayload) {
  std::string out;
  std::string frame = encode(Framing::length, "abc");
  ASSERT_EQ(frame, std::string("\0\0\0\3abc", 7));
  Buffer in;
  in.append(frame.substr(0, 2));
  EXPECT_EQ(decode(Framing::length, in, 100, out), DecodeStatus::need_more);
  in.append(frame.substr(2, 3));
  EXPECT_EQ(decode(Framing::length, in, 100, out), DecodeStatus::need_more);
  in.append(frame.substr(5) + encode(Framing::length, ""));
  ASSERT_EQ(decode(Framing::length, in, 100, out), DecodeStatus::message);
  EXPECT_EQ(out, "abc");
  ASSERT_EQ(decode(Framing::length, in, 100, out), DecodeStatus::message);
  EXPECT_EQ(out, "");
  EXPECT_TRUE(in.empty());
}

TEST(ChatFraming, LengthFrameOverMaxIsRejectedFromTheHeaderAlone) {
  std::string out;
  Buffer in = buffer_of(std::string("\xff\xff\xff\xff", 4));
  EXPECT_EQ(decode(Framing::length, in, 4096, out), DecodeStatus::too_long);
  Buffer at_max = buffer_of(encode(Framing::length, std::string(4096, 'a')));
  EXPECT_EQ(decode(Framing::length, at_max, 4096, out), DecodeStatus::message);
}

TEST(ChatFraming, SanitizeReplacesControlCharacters) {
  EXPECT_EQ(sanitize(std::string("a\0b\x1b[2J\tc\x7f", 10)), "a?b?[2J\tc?");
  EXPECT_EQ(sanitize("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 passes through
}

TEST(ChatFraming, SanitizeStopsC1AndBidiControls) {
  EXPECT_EQ(sanitize("a\xc2\x9b"
                     "31mred"),
            "a?31mred");                        // U+009B CSI, C1 escape
  EXPECT_EQ(sanitize("\xc2\x85x"), "?x");       // U+0085 NEL
  EXPECT_EQ(sanitize("\xc2\xa0"), "\xc2\xa0");  // U+00A0 is text
  // RLO, LRE, PDF, RLI, PDI (Trojan Source): reordering controls.
  EXPECT_EQ(sanitize("x\xe2\x80\xaey\xe2\x80\xaaz\xe2\x80\xac"), "x?y?z?");
  EXPECT_EQ(sanitize("\xe2\x81\xa7" "a\xe2\x81\xa9"), "?a?");
  EXPECT_EQ(sanitize("\xe2\x80\x8f"), "\xe2\x80\x8f");                // RLM: a mark, not a control
  EXPECT_EQ(sanitize("\xf0\x9f\x98\x80 ok"), "\xf0\x9f\x98\x80 ok");  // emoji
}

TEST(ChatFraming, SanitizeReplacesInvalidUtf8) {
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(sanitize("a\x80" "b"), "a" + fffd + "b");                     // stray continuation
  EXPECT_EQ(sanitize("\xc0\xaf"), fffd + fffd);                        // overlong '/'
  EXPECT_EQ(sanitize("\xe0\x80\xaf"), fffd + fffd + fffd);             // overlong, 3 bytes
  EXPECT_EQ(sanitize("\xed\xa0\x80"), fffd + fffd + fffd);             // surrogate U+D800
  EXPECT_EQ(sanitize("\xf4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
  EXPECT_EQ(sanitize("ab\xe2\x82"), "ab" + fffd + fffd);               // cut off at the end
  EXPECT_EQ(sanitize("\xff"), fffd);
  std::string worst(1000, '\x80');
  EXPECT_EQ(sanitize(worst).size(), 3000u);  // bounded: at most 3 bytes out per byte in
}

TEST(ChatNames, OneTo32OfTheAllowedCharacters) {
  EXPECT_TRUE(ChatService::valid_name("alice"));
  EXPECT_TRUE(ChatService::valid_name("A.b-c_9"));
  EXPECT_TRUE(ChatService::valid_name(std::string(32, 'x')));
  EXPECT_FALSE(ChatService::valid_name(""));
  EXPECT_FALSE(ChatService::valid_name(std::string(33, 'x')));
  EXPECT_FALSE(ChatService::valid_name("bad name"));
  EXPECT_FALSE(ChatService::valid_name("#room"));
  EXPECT_FALSE(ChatService::valid_name("caf\xc3\xa9"));
}

}  // namespace
}  // namespace keel::chat
