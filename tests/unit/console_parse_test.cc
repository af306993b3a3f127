// keel ctl's console: how a typed line becomes a command (the text of send and broadcast is the
// rest of the line as typed, spaces included).
#include <gtest/gtest.h>

#include <string>

#include "cli/ctl_console.h"

namespace keel::cli {
namespace {

CtlCommand parse(const std::string& line, std::string* problem) {
  CtlCommand c;
  parse_console_command(split_console_line(line), c, problem);
  return c;
}

TEST(ConsoleParse, SplitKeepsTheRestOfTheLine) {
  ConsoleWords w = split_console_line("  send 17  hello   there  ");
  ASSERT_EQ(w.words.size(), 4u);
  EXPECT_EQ(w.words[0], "send");
  EXPECT_EQ(w.words[1], "17");
  EXPECT_EQ(w.rest[2], "hello   there");
  EXPECT_TRUE(split_console_line(" \t ").words.empty());
}

TEST(ConsoleParse, SendTakesTheTextAsTyped) {
  std::string problem;
  CtlCommand c = parse("send 127.0.0.1:5555 hi  you", &problem);
  EXPECT_EQ(problem, "");
  EXPECT_EQ(c.cmd, "send");
  EXPECT_EQ(c.target, "127.0.0.1:5555");
  ASSERT_EQ(c.words.size(), 1u);
  EXPECT_EQ(c.words[0], "hi  you");
}

TEST(ConsoleParse, BroadcastOptionsThenText) {
  std::string problem;
  CtlCommand c = parse("broadcast --room lobby --service chat  we close at 5", &problem);
  EXPECT_EQ(problem, "");
  EXPECT_EQ(c.room, "lobby");
  EXPECT_EQ(c.service, "chat");
  ASSERT_EQ(c.words.size(), 1u);
  EXPECT_EQ(c.words[0], "we close at 5");
  parse("broadcast --room", &problem);
  EXPECT_EQ(problem, "--room needs a value");
}

TEST(ConsoleParse, KickWithAndWithoutReason) {
  std::string problem;
  CtlCommand c = parse("kick 9 spamming the room", &problem);
  EXPECT_EQ(c.target, "9");
  ASSERT_EQ(c.words.size(), 1u);
  EXPECT_EQ(c.words[0], "spamming the room");
  c = parse("kick 9", &problem);
  EXPECT_TRUE(c.words.empty());
  EXPECT_EQ(problem, "");
}

TEST(ConsoleParse, UsageProblemsAreReported) {
  std::string problem;
  parse("send 9", &problem);
  EXPECT_EQ(problem, "usage: send ID|ADDR TEXT");
  problem.clear();
  parse("watch", &problem);
  EXPECT_EQ(problem, "usage: watch ID|ADDR");
  problem.clear();
  parse("list now", &problem);
  EXPECT_EQ(problem, "list takes no arguments");
  problem.clear();
  parse("frobnicate", &problem);
  EXPECT_EQ(problem, "unknown command 'frobnicate' (try help)");
}

}  // namespace
}  // namespace keel::cli
