// Server::send_file under the in-process models and through TLS: a file region goes out byte-exact
// between the bytes sent before and after it (order kept), a part of a file is just that part,
// several regions queue behind each other, and a file that ends before its region closes the
// connection after the bytes that exist (the client sees a short transfer, not made-up bytes).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "integration/echo_fixture.h"
#include "keel/net/file_region.h"
#include "keel/net/tls.h"
#include "keel/service.h"
#include "tls_util.h"

namespace keel::test {
namespace {

// Bigger than a write turn's slice (1 MiB) and than a socket buffer, with an odd tail.
constexpr size_t kFileBytes = 3 * 1024 * 1024 + 7;

// Answers each request line: "all" (the file between "<" and ">"), "part" (bytes 5..104),
// "twice" (the file twice in a row, then "!"), "over" (a region 1000 bytes past the end).
class FileSenderService final : public Service {
 public:
  explicit FileSenderService(std::shared_ptr<const OpenFile> file) : file_(std::move(file)) {}
  const char* name() const noexcept override { return "file-sender"; }
  bool connections_independent() const noexcept override { return true; }
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    for (;;) {
      std::string_view v = in.view();
      size_t eol = v.find('\n');
      if (eol == std::string_view::npos) return;
      std::string line(v.substr(0, eol));
      in.consume(eol + 1);
      if (line == "all") {
        server.send(id, "<");
        server.send_file(id, {file_, 0, kFileBytes});
        server.send(id, ">");
      } else if (line == "part") {
        server.send_file(id, {file_, 5, 100});
      } else if (line == "twice") {
        server.send_file(id, {file_, 0, kFileBytes});
        server.send_file(id, {file_, 0, kFileBytes});
        server.send(id, "!");
      } else if (line == "over") {
        server.send_file(id, {file_, 0, kFileBytes + 1000});
        server.send(id, "never sent");
      }
    }
  }

 private:
  std::shared_ptr<const OpenFile> file_;
};

class SendFileTest : public EchoEngineTest {
 protected:
  void SetUp() override {
    EchoEngineTest::SetUp();
    content_ = pattern_bytes(kFileBytes, 7);
    int fd = unlinked_temp_file(content_);
    ASSERT_GE(fd, 0);
    file_ = std::make_shared<OpenFile>(fd);
    service_ = std::make_unique<FileSenderService>(file_);
  }

  void start_plain() { start({}, 2, service_.get()); }
  void start_tls() {
    ASSERT_TRUE(cert_.ok()) << "openssl could not make a test certificate";
    ServerOptions o;
    o.stream.factory = TlsContext::factory(TlsContext::server({cert_.cert(), cert_.key()}));
    start(std::move(o), 2, service_.get());
  }

  std::string content_;
  std::shared_ptr<const OpenFile> file_;
  std::unique_ptr<FileSenderService> service_;
  TestCertificate cert_;
};

TEST_P(SendFileTest, TheRegionGoesOutBetweenTheBytesAroundIt) {
  start_plain();
  Fd c = connect_client();
  ASSERT_TRUE(write_all(c.get(), "all\npart\n"));
  std::string want = "<" + content_ + ">" + content_.substr(5, 100);
  std::string got = read_exactly(c.get(), want.size());
  EXPECT_EQ(describe_difference(got, want), "equal");
}

TEST_P(SendFileTest, RegionsQueueBehindEachOther) {
  start_plain();
  Fd c = connect_client();
  ASSERT_TRUE(write_all(c.get(), "twice\nall\n"));
  std::string want = content_ + content_ + "!" + "<" + content_ + ">";
  std::string got = read_exactly(c.get(), want.size());
  EXPECT_EQ(describe_difference(got, want), "equal");
}

TEST_P(SendFileTest, AFileThatEndsEarlyClosesTheConnectionAfterItsBytes) {
  start_plain();
  Fd c = connect_client();
  ASSERT_TRUE(write_all(c.get(), "over\n"));
  std::string got;
  StreamEnd end = read_until_end(c.get(), &got);
  EXPECT_NE(end, StreamEnd::timeout);
  EXPECT_EQ(describe_difference(got, content_), "equal");
}

TEST_P(SendFileTest, ThroughTlsTheRegionIsReadAndWrittenInSlices) {
  start_tls();
  TlsTestClient c(endpoint(), cert_.cert());
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.write_all("all\npart\n"));
  std::string want = "<" + content_ + ">" + content_.substr(5, 100);
  std::string got = c.read_exactly(want.size());
  EXPECT_EQ(describe_difference(got, want), "equal");
}

// In-process models only: a process-per-connection child keeps nothing but its socket (the file
// this test opened beforehand is closed there), so a service opens its files in the child, on
// request, as keel files does.
INSTANTIATE_TEST_SUITE_P(Models, SendFileTest, ::testing::ValuesIn(in_process_models()),
                         model_name);

}  // namespace
}  // namespace keel::test
