// keel serve --config docs/keel.example.toml, as an operator runs it: the file's settings reach
// the services, --print-config reads back, and a bad file is one line and exit status 2.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "e2e/subprocess.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;
const std::string kExample = std::string(KEEL_SOURCE_DIR) + "/docs/keel.example.toml";

std::string read_file(const std::string& path) {
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  return text.str();
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/keel-config-e2e-XXXXXX";
    int fd = ::mkstemp(name);
    EXPECT_GE(fd, 0);
    ::close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~TempFile() { ::unlink(path.c_str()); }
};

// The example file with kernel-chosen ports, no admin socket, and a short chat line limit.
std::string example_on_free_ports() {
  std::string text = read_file(kExample);
  EXPECT_NE(text.find(":7000\""), std::string::npos);
  replace_all(text, ":7000\"", ":0\"");
  replace_all(text, ":7001\"", ":0\"");
  replace_all(text, ":7002\"", ":0\"");
  replace_all(text, "endpoint = \"unix:./keel-admin.sock\"", "endpoint = \"none\"");
  replace_all(text, "max-line = 4096", "max-line = 32");
  EXPECT_NE(text.find("endpoint = \"none\""), std::string::npos);
  EXPECT_NE(text.find("max-line = 32"), std::string::npos);
  return text;
}

TEST(Config, ServeRunsTheExampleFile) {
  TempFile config(example_on_free_ports());
  Subprocess serve({kKeel, "serve", "--config", config.path});
  auto echo_port = serve.wait_for_stderr(R"(echo listening on 127\.0\.0\.1:(\d+) \(2 threads\))");
  auto chat_port = serve.wait_for_stderr(R"(chat listening on 127\.0\.0\.1:(\d+) \(2 threads\))");
  ASSERT_TRUE(echo_port && chat_port) << serve.err();
  // Each service logs its line when it is up, in no promised order: wait for every one.
  EXPECT_TRUE(serve.wait_for_stderr(R"(echo listening on udp:127\.0\.0\.1:\d+)")) << serve.err();
  EXPECT_TRUE(serve.wait_for_stderr(R"(hub listening on 127\.0\.0\.1:\d+)")) << serve.err();

  Fd echo = connect_to(Endpoint::parse("127.0.0.1:" + *echo_port));
  ASSERT_TRUE(echo.valid());
  EXPECT_EQ(round_trip(echo.get(), "hello from the config\n"), "hello from the config\n");

  Fd chat = connect_to(Endpoint::parse("127.0.0.1:" + *chat_port));
  ASSERT_TRUE(chat.valid());
  const std::string welcome =
      "* welcome to keel chat: /nick NAME, then /join ROOM (/help for more)\n";
  EXPECT_EQ(read_exactly(chat.get(), welcome.size()), welcome);
  // max-line = 32 from the file: a longer line is refused and the client closed.
  ASSERT_TRUE(write_all(chat.get(), std::string(40, 'x') + "\n"));
  std::string rest;
  EXPECT_EQ(read_until_end(chat.get(), &rest), StreamEnd::eof);
  EXPECT_NE(rest.find("line too long (max 32"), std::string::npos) << rest;
  echo.reset();  // nothing left to drain
  chat.reset();
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(), 0) << serve.err();
  // Checked once the program has exited and all it logged is read.
  EXPECT_EQ(serve.err().find("admin listening"), std::string::npos) << serve.err();
}

TEST(Config, FlagsWinOverTheFile) {
  TempFile config(example_on_free_ports());
  Subprocess serve(
      {kKeel, "serve", "--config", config.path, "--threads", "1", "--echo", "127.0.0.1:0"});
  auto port = serve.wait_for_stderr(R"(chat listening on 127\.0\.0\.1:(\d+) \(1 thread\))");
  ASSERT_TRUE(port) << serve.err();
  EXPECT_TRUE(serve.wait_for_stderr(R"(echo listening on 127\.0\.0\.1:\d+)")) << serve.err();
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(), 0) << serve.err();
  // --echo replaced the file's list, so the udp: listener is not there: checked once the
  // program has exited and all it logged is read.
  EXPECT_EQ(serve.err().find("udp:"), std::string::npos) << serve.err();
}

TEST(Config, PrintConfigOfTheExampleReadsBack) {
  Subprocess first({kKeel, "serve", "--config", kExample, "--print-config"});
  ASSERT_EQ(first.wait(), 0) << first.err();
  EXPECT_EQ(first.err(), "");
  EXPECT_TRUE(first.out().starts_with("# keel serve: effective settings")) << first.out();
  EXPECT_NE(first.out().find("\n[server]\nmodel = \"reactor\"\nthreads = 2\n"), std::string::npos)
      << first.out();

  TempFile printed(first.out());
  Subprocess second({kKeel, "serve", "--config", printed.path, "--print-config"});
  ASSERT_EQ(second.wait(), 0) << second.err();
  EXPECT_EQ(second.out(), first.out());
}

TEST(Config, ABadFileIsOneLineAndUsageStatus) {
  TempFile config("[server]\nthreads = 2\n\n[chat]\nmax-lines = 10\n");
  Subprocess serve({kKeel, "serve", "--config", config.path});
  EXPECT_EQ(serve.wait(), 2);
  const std::string err = serve.err();
  EXPECT_TRUE(err.starts_with("keel: " + config.path +
                              ":5: chat.max-lines: unknown key (the keys of [chat] are listen, "
                              "framing, max-line, "))
      << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(serve.out(), "");

  Subprocess missing({kKeel, "chat", "--config", "/nonexistent/keel.toml"});
  EXPECT_EQ(missing.wait(), 2);
  EXPECT_EQ(missing.err(), "keel: open config /nonexistent/keel.toml: No such file or directory\n");
}

}  // namespace
}  // namespace keel::test
