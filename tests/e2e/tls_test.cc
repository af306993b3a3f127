// TLS as an operator uses it: `keel echo --tls-cert/--tls-key` reached by `keel cat --tls`, by
// `openssl s_client` (interop with another implementation), seen in `keel ctl list`, and loaded
// by `keel bench --tls`. Certificates are made at test time.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/subprocess.h"
#include "test_util.h"
#include "tls_util.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;
const std::string kOpenssl = "/usr/bin/openssl";

class TlsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cert_.ok()) << "openssl could not make a test certificate";
    admin_ = "unix:" + cert_.dir() + "/admin.sock";
    server_ = std::make_unique<Subprocess>(
        std::vector<std::string>{kKeel, "echo", "--listen", "127.0.0.1:0", "--admin", admin_,
                                 "--tls-cert", cert_.cert(), "--tls-key", cert_.key()});
    auto port = logged_port(*server_);
    ASSERT_TRUE(port) << server_->err();
    target_ = "127.0.0.1:" + std::to_string(*port);
  }
  void TearDown() override {
    if (!server_) return;
    server_->signal(SIGTERM);
    EXPECT_EQ(server_->wait(), 0) << server_->err();
  }

  TestCertificate cert_;
  std::string admin_, target_;
  std::unique_ptr<Subprocess> server_;
};

TEST_F(TlsCli, KeelCatRoundTrip) {
  std::string payload = pattern_bytes(200000, 9);
  CommandRun cat = run_command({kKeel, "cat", "--tls", "--ca", cert_.cert(), target_}, payload);
  EXPECT_EQ(cat.code, 0) << cat.err;
  EXPECT_TRUE(cat.out == payload) << cat.out.size() << " bytes back of " << payload.size();
}

TEST_F(TlsCli, KeelCatRefusesAnUntrustedCertificate) {
  CommandRun cat =
      run_command({kKeel, "cat", "--tls", target_}, "hi\n");  // system trust store: not ours
  EXPECT_EQ(cat.code, 1);
  EXPECT_NE(cat.err.find("certificate verify failed"), std::string::npos) << cat.err;
  EXPECT_TRUE(server_->wait_for_stderr("closed before it opened: .*TLS handshake"))
      << server_->err();
}

TEST_F(TlsCli, OpensslSClientInterop) {
  Subprocess s({kOpenssl, "s_client", "-connect", target_, "-CAfile", cert_.cert(),
                "-verify_return_error", "-quiet", "-no_ign_eof"});
  s.write_stdin("hello from openssl\n");
  // stdin stays open until the echo is back: s_client ends the session at stdin's EOF.
  EXPECT_TRUE(eventually([&] { return s.out() == "hello from openssl\n"; })) << s.out() << s.err();
  s.close_stdin();
  EXPECT_EQ(s.wait(10s), 0) << s.err();
}

TEST_F(TlsCli, RenegotiationIsRefused) {
  // s_client's "R" line asks for a renegotiation (TLS 1.2 has them; 1.3 does not).
  Subprocess s({kOpenssl, "s_client", "-connect", target_, "-tls1_2", "-CAfile", cert_.cert()});
  s.write_stdin("before\n");
  ASSERT_TRUE(eventually([&] { return s.out().find("before") != std::string::npos; }))
      << s.out() << s.err();
  s.write_stdin("R\n");
  EXPECT_TRUE(eventually([&] {
    return (s.out() + s.err()).find("no renegotiation") != std::string::npos;
  })) << s.out()
      << s.err();
  s.close_stdin();
  s.wait(10s);
}

TEST_F(TlsCli, CtlListShowsVersionAndCipher) {
  TlsTestClient c(Endpoint::parse(target_), cert_.cert());
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.write_all("x"));
  ASSERT_EQ(c.read_exactly(1), "x");
  CommandRun list = run_command({kKeel, "ctl", "--admin", admin_, "--json", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  auto reply = nlohmann::json::parse(list.out, nullptr, false);
  ASSERT_EQ(reply["clients"].size(), 1u) << list.out;
  EXPECT_EQ(reply["clients"][0]["transport"], c.transport()) << list.out;
  CommandRun table = run_command({kKeel, "ctl", "--admin", admin_, "list"});
  EXPECT_NE(table.out.find("TRANSPORT"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(c.transport()), std::string::npos) << table.out;
}

TEST_F(TlsCli, BenchConnectAndPingpongOverTls) {
  CommandRun connect = run_command(
      {kKeel, "bench", "connect", "--tls", "--ca", cert_.cert(), "-d", "1", "--json", target_});
  ASSERT_EQ(connect.code, 0) << connect.err;
  auto c = nlohmann::json::parse(connect.out, nullptr, false);
  EXPECT_GT(c.value("completed", 0), 0) << connect.out;
  EXPECT_EQ(c["errors"].value("connect", -1), 0) << connect.out;
  CommandRun ping = run_command(
      {kKeel, "bench", "pingpong", "--tls", "--insecure", "-c", "4", "-d", "1", "--json", target_});
  ASSERT_EQ(ping.code, 0) << ping.err;
  auto p = nlohmann::json::parse(ping.out, nullptr, false);
  EXPECT_GT(p.value("messages", 0), 0) << ping.out;
}

}  // namespace
}  // namespace keel::test
