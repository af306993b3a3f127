// keel ctl's reply collector: finds the end of a reply that arrives in many pieces, scanning each
// byte once (it used to search the whole reply again after every read: quadratic in its size).
#include <gtest/gtest.h>

#include <string>

#include "cli/ctl.h"

namespace keel::cli {
namespace {

TEST(CtlReplyLine, LineSplitAcrossPiecesEndsAtTheFirstNewline) {
  ReplyLine r;
  EXPECT_FALSE(r.append("{\"ok\":"));
  EXPECT_FALSE(r.complete());
  EXPECT_TRUE(r.append("true}\n{\"next\":1}\n"));
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.line(), "{\"ok\":true}");
  EXPECT_TRUE(r.append("more"));  // nothing is added once complete
  EXPECT_EQ(r.line(), "{\"ok\":true}");
}

TEST(CtlReplyLine, EmptyLine) {
  ReplyLine r;
  EXPECT_TRUE(r.append("\n"));
  EXPECT_EQ(r.line(), "");
}

TEST(CtlReplyLine, LargeReplyInSmallPiecesIsScannedOnce) {
  // 8 MiB in 1 KiB pieces: 8,192 reads. A rescan per read would search ~32 GiB.
  const std::string piece(1024, 'x');
  constexpr size_t kPieces = 8192;
  ReplyLine r;
  for (size_t i = 0; i < kPieces; ++i) ASSERT_FALSE(r.append(piece));
  ASSERT_TRUE(r.append("y\ntrailing"));
  EXPECT_EQ(r.size(), kPieces * piece.size() + 1);
  EXPECT_EQ(r.line().back(), 'y');
  // Every byte up to and including the "\n" is looked at exactly once.
  EXPECT_EQ(r.bytes_scanned(), kPieces * piece.size() + 2);
}

}  // namespace
}  // namespace keel::cli
