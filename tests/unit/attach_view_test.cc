// keel ctl attach's view of a client's bytes: escapes, UTF-8 cut between reads, length frames,
// and base64 as the session events carry the bytes.
#include "cli/attach_view.h"

#include <gtest/gtest.h>

#include "admin/base64.h"

namespace keel {
namespace {

using cli::AttachView;
using cli::escape_for_terminal;

TEST(AttachView, ControlCharactersAndBadUtf8AreEscaped) {
  EXPECT_EQ(escape_for_terminal("plain text\n"), "plain text\n");
  EXPECT_EQ(escape_for_terminal("\x1b[2J\a\r\t\x7f"), "\\x1b[2J\\x07\\r\\t\\x7f");
  EXPECT_EQ(escape_for_terminal("back\\slash"), "back\\\\slash");
  EXPECT_EQ(escape_for_terminal("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");
  EXPECT_EQ(escape_for_terminal("\xff\xc0\xaf"), "\\xff\\xc0\\xaf");
  EXPECT_EQ(escape_for_terminal("\xc2\x9b"), "\\xc2\\x9b");  // C1 CSI
  EXPECT_EQ(escape_for_terminal("a\xe2\x80\xae"
                                "b"),
            "a\\u202eb");  // right-to-left override
  EXPECT_EQ(escape_for_terminal("x\ny", false), "x\\ny");
  EXPECT_EQ(escape_for_terminal(std::string("\0", 1)), "\\x00");
}

TEST(AttachView, AUtf8SequenceCutBetweenReadsIsShownWhole) {
  AttachView view(AttachView::Framing::lines);
  EXPECT_EQ(view.feed("caf\xc3"), "caf");
  EXPECT_EQ(view.feed("\xa9!\n"), "\xc3\xa9!\n");
  EXPECT_EQ(view.feed("\xe2\x82"), "");
  EXPECT_EQ(view.feed("x"), "\\xe2\\x82x");  // not a sequence after all
  EXPECT_EQ(view.finish(), "\n");
  EXPECT_EQ(view.feed("\xf0\x9f"), "");
  EXPECT_EQ(view.finish(), "\\xf0\\x9f\n");
}

TEST(AttachView, LengthFramesAreOneLineEach) {
  AttachView view(AttachView::Framing::length);
  std::string frames = std::string("\0\0\0\5hello", 9) + std::string("\0\0\0\3a\nb", 7);
  std::string shown;
  for (char ch : frames) shown += view.feed(std::string_view(&ch, 1));  // byte by byte
  EXPECT_EQ(shown, "hello\na\\nb\n");
  EXPECT_EQ(view.feed(std::string("\0\0\0\0", 4)), "\n");  // an empty frame: an empty line
  EXPECT_EQ(view.feed(std::string("\xff\xff\xff\xff"
                                  "abc",
                                  7)),
            "abc")
      << "a huge frame is shown as it comes, never buffered";
  EXPECT_EQ(view.finish(), "\n");
}

TEST(AttachView, BinaryKeepsLineBreaksAndEscapesTheRest) {
  AttachView view(AttachView::Framing::binary);
  EXPECT_EQ(view.feed(std::string("\x00\x01\n\xfe", 4)), "\\x00\\x01\n\\xfe");
  EXPECT_EQ(view.finish(), "\n");
}

TEST(Base64, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    std::string encoded = admin::base64_encode(bytes);
    EXPECT_EQ(encoded.size(), (bytes.size() + 2) / 3 * 4);
    EXPECT_EQ(admin::base64_decode(encoded), bytes);
    bytes += static_cast<char>(i * 7);
  }
  EXPECT_EQ(admin::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(admin::base64_encode("fo"), "Zm8=");
}

TEST(Base64, RefusesWhatIsNotCanonical) {
  for (const char* bad :
       {"Zm9", "Zm9v!", "Zm=v", "Zm9=Zm9v", "Zm9=====", "Zm9w====", "Zm9=", "Zn==", "Zm8\n"})
    EXPECT_FALSE(admin::base64_decode(bad)) << bad;
  EXPECT_EQ(admin::base64_decode(""), "");
}

}  // namespace
}  // namespace keel
