// keel get and keel put as a user runs them against `keel files`: byte-exact transfers of 0 B to
// 256 MiB with their JSON summaries checked against OpenSSL's SHA-256, resume after a connection
// cut for real mid-stream (by a proxy), a resume prefix that is not the file's detected and
// started over, every engine model and TLS.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "e2e/files_util.h"
#include "tls_util.h"

namespace keel::test::files_e2e {
namespace {

class FilesTransfer : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tree_.path().empty());
    root_ = tree_.dir("root");
    local_ = tree_.dir("local");
  }

  // Starts the server (writable unless extra says otherwise), stopping one started before.
  void start(std::vector<std::string> extra = {"--writable"}) {
    if (server_) {
      EXPECT_EQ(server_->stop(), 0);
    }
    server_ = std::make_unique<FilesServer>(root_, std::move(extra));
    ASSERT_TRUE(server_->ok()) << server_->log();
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->stop(), 0);
    }
  }

  ScratchTree tree_;
  std::string root_, local_;
  std::unique_ptr<FilesServer> server_;
};

// get and put of each size, each checked byte for byte and by an independent SHA-256.
TEST_F(FilesTransfer, SmallFilesAreByteExactBothWays) {
  start();
  for (size_t size : {size_t{0}, size_t{1}, kMiB + 1}) {
    SCOPED_TRACE("size " + std::to_string(size));
    const std::string name = "f" + std::to_string(size);
    const std::string served = pattern_bytes(size, static_cast<uint32_t>(size + 7));
    ASSERT_TRUE(write_file(root_ + "/" + name, served));
    ClientRun get =
        keel_client({"get", server_->target(), name, local_ + "/" + name + ".got", "--json"});
    expect_verified(get, size, sha256_hex(served));
    EXPECT_EQ(get.json.value("resumed_from", -1), 0) << get.out;
    EXPECT_EQ(get.json.value("command", ""), "get") << get.out;
    EXPECT_TRUE(read_file(local_ + "/" + name + ".got") == served);
    EXPECT_FALSE(fs::exists(local_ + "/" + name + ".got.keel-part"));

    const std::string sent = pattern_bytes(size, static_cast<uint32_t>(size + 8));
    ASSERT_TRUE(write_file(local_ + "/" + name + ".up", sent));
    ClientRun put = keel_client(
        {"put", server_->target(), local_ + "/" + name + ".up", name + ".up", "--json"});
    expect_verified(put, size, sha256_hex(sent));
    EXPECT_EQ(put.json.value("resumed_from", -1), 0) << put.out;
    EXPECT_EQ(put.json.value("command", ""), "put") << put.out;
    EXPECT_TRUE(read_file(root_ + "/" + name + ".up") == sent);
  }
  // A refused get leaves nothing behind, not even an empty part file.
  ClientRun missing = keel_client({"get", server_->target(), "missing", local_ + "/missing"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("not_found"), std::string::npos) << missing.err;
  // Nothing but the files themselves is left on either side.
  EXPECT_EQ(names_in(root_).size(), 6u);
  EXPECT_EQ(names_in(local_).size(), 6u) << testing::PrintToString(names_in(local_));
}

// 256 MiB up, then down again: each direction once, compared by SHA-256.
TEST_F(FilesTransfer, BigFileRoundTripIsExact) {
  start();
  const uint64_t size = 256 * kMiB;
  const std::string original = local_ + "/big.bin";
  ASSERT_TRUE(write_big_file(original, size, 0x5eed));
  const std::string sha = file_sha256_hex(original);
  ClientRun put = keel_client({"put", server_->target(), original, "big.bin", "--json"});
  expect_verified(put, size, sha);
  EXPECT_EQ(file_sha256_hex(root_ + "/big.bin"), sha);
  EXPECT_EQ(file_size_or_zero(root_ + "/big.bin"), size);

  ClientRun get =
      keel_client({"get", server_->target(), "big.bin", local_ + "/back.bin", "--json"});
  expect_verified(get, size, sha);
  EXPECT_EQ(file_sha256_hex(local_ + "/back.bin"), sha);
}

// The connection is cut after 3 MiB of an 8 MiB download: exit 3 and the part file kept; then
// --resume fetches only the rest and verifies the whole file.
TEST_F(FilesTransfer, GetResumesAfterTheConnectionIsCut) {
  start();
  const std::string content = pattern_bytes(8 * kMiB, 21);
  ASSERT_TRUE(write_file(root_ + "/data.bin", content));
  const std::string local = local_ + "/data.bin";
  {
    CuttingProxy proxy(server_->endpoint(), CuttingProxy::Cut::server_to_client, 3 * kMiB);
    ASSERT_TRUE(proxy.ok());
    ClientRun cut = keel_client({"get", proxy.target(), "data.bin", local, "--json"});
    EXPECT_EQ(cut.code, 3) << cut.err;
    EXPECT_TRUE(proxy.cut_done());
    EXPECT_NE(cut.err.find("--resume"), std::string::npos) << cut.err;
  }
  EXPECT_FALSE(fs::exists(local));
  const uint64_t held = file_size_or_zero(local + ".keel-part");
  ASSERT_GT(held, 0u);
  ASSERT_LT(held, 3 * kMiB);  // the DATA frame's header came first
  EXPECT_TRUE(read_file(local + ".keel-part") == content.substr(0, held));

  ClientRun resumed =
      keel_client({"get", server_->target(), "data.bin", local, "--resume", "--json"});
  expect_verified(resumed, content.size(), sha256_hex(content));
  EXPECT_EQ(resumed.json.value("resumed_from", uint64_t{0}), held) << resumed.out;
  EXPECT_EQ(resumed.json.value("bytes_transferred", uint64_t{0}), content.size() - held);
  EXPECT_EQ(resumed.json.value("resume_rejected", true), false) << resumed.out;
  EXPECT_TRUE(read_file(local) == content);
  EXPECT_FALSE(fs::exists(local + ".keel-part"));
}

// The same for an upload: the server keeps what arrived in .NAME.keel-part, and put --resume
// sends only the rest.
TEST_F(FilesTransfer, PutResumesAfterTheConnectionIsCut) {
  start();
  const std::string content = pattern_bytes(8 * kMiB, 22);
  const std::string local = local_ + "/up.bin";
  ASSERT_TRUE(write_file(local, content));
  const std::string part = part_of(root_, "up.bin");
  {
    CuttingProxy proxy(server_->endpoint(), CuttingProxy::Cut::client_to_server, 3 * kMiB);
    ASSERT_TRUE(proxy.ok());
    ClientRun cut = keel_client({"put", proxy.target(), local, "up.bin", "--json"});
    EXPECT_EQ(cut.code, 3) << cut.err;
    EXPECT_TRUE(proxy.cut_done());
    EXPECT_NE(cut.err.find("--resume"), std::string::npos) << cut.err;
  }
  EXPECT_FALSE(fs::exists(root_ + "/up.bin"));
  // The server has seen the cut once it lets go of the part file.
  ASSERT_TRUE(eventually([&] { return fs::exists(part) && unlocked(part); }, 5s)) << server_->log();
  const uint64_t held = file_size_or_zero(part);
  ASSERT_GT(held, 0u);
  ASSERT_LT(held, 3 * kMiB);  // the PUT frame came first
  EXPECT_TRUE(read_file(part) == content.substr(0, held));

  ClientRun resumed =
      keel_client({"put", server_->target(), local, "up.bin", "--resume", "--json"});
  expect_verified(resumed, content.size(), sha256_hex(content));
  EXPECT_EQ(resumed.json.value("resumed_from", uint64_t{0}), held) << resumed.out;
  EXPECT_EQ(resumed.json.value("bytes_transferred", uint64_t{0}), content.size() - held);
  EXPECT_EQ(resumed.json.value("resume_rejected", true), false) << resumed.out;
  EXPECT_TRUE(read_file(root_ + "/up.bin") == content);
  EXPECT_EQ(names_in(root_), std::set<std::string>{"up.bin"});
}

// A local part file whose bytes are not the remote file's first bytes (or that is longer than
// the remote file) is not trusted: get says so, starts over and ends verified.
TEST_F(FilesTransfer, GetResumeWithAWrongPrefixStartsOver) {
  start();
  const std::string content = pattern_bytes(kMiB + 1, 31);
  ASSERT_TRUE(write_file(root_ + "/r.bin", content));
  const std::string local = local_ + "/r.bin";
  for (size_t planted : {size_t{4096}, 2 * kMiB}) {
    SCOPED_TRACE("part file of " + std::to_string(planted) + " bytes");
    std::string wrong = content.substr(0, std::min(planted, content.size()));
    wrong.resize(planted, 'x');
    wrong[100] = static_cast<char>(wrong[100] ^ 1);
    ASSERT_TRUE(write_file(local + ".keel-part", wrong));
    ClientRun run = keel_client({"get", server_->target(), "r.bin", local, "--resume", "--json"});
    expect_verified(run, content.size(), sha256_hex(content));
    EXPECT_EQ(run.json.value("resume_rejected", false), true) << run.out;
    EXPECT_EQ(run.json.value("resumed_from", uint64_t{1}), 0u) << run.out;
    EXPECT_NE(run.err.find("starting over"), std::string::npos) << run.err;
    EXPECT_TRUE(read_file(local) == content);
    EXPECT_FALSE(fs::exists(local + ".keel-part"));
    fs::remove(local);
  }
}

const std::vector<std::string> kModels = {"reactor", "threads", "processes"};

// The server's part file holds bytes that are not the start of the local file: put --resume
// sees the server's hash differ, says so, and starts over on a new connection. Repeated under
// each model, since the new connection's PUT must never meet the old one's lock on the part
// file (busy): the client waits for the server to end the old connection, and the server lets
// go of the part file before it does.
TEST_F(FilesTransfer, PutResumeWithAWrongPrefixStartsOver) {
  const std::string content = pattern_bytes(256 * 1024, 32);
  const std::string local = local_ + "/p.bin";
  ASSERT_TRUE(write_file(local, content));
  for (const std::string& model : kModels) {
    start({"--writable", "--model", model});
    for (int round = 0; round < 15; ++round) {
      SCOPED_TRACE(model + " round " + std::to_string(round));
      const std::string name = model + std::to_string(round) + ".bin";
      std::string wrong = content.substr(0, 4096);
      wrong[10] = static_cast<char>(wrong[10] ^ 0x40);
      ASSERT_TRUE(write_file(part_of(root_, name), wrong));
      ClientRun run = keel_client({"put", server_->target(), local, name, "--resume", "--json"});
      expect_verified(run, content.size(), sha256_hex(content));
      EXPECT_EQ(run.json.value("resume_rejected", false), true) << run.out;
      EXPECT_EQ(run.json.value("resumed_from", uint64_t{1}), 0u) << run.out;
      EXPECT_NE(run.err.find("starting over"), std::string::npos) << run.err;
      EXPECT_TRUE(read_file(root_ + "/" + name) == content);
      EXPECT_FALSE(fs::exists(part_of(root_, name)));
      if (HasFailure()) return;
    }
  }
}

// A client that half-closes mid-upload sends no more of it: by the time the server's FIN
// arrives, the server has let go of the part file (kept for a resume), so a new connection may
// resume it at once instead of being told busy.
TEST_F(FilesTransfer, HalfClosedUploadLetsGoOfItsNameBeforeTheServersFin) {
  const std::string sent = pattern_bytes(1000, 33);
  for (const std::string& model : kModels) {
    start({"--writable", "--model", model});
    const std::string name = model + ".bin";
    const std::string part = part_of(root_, name);
    for (int round = 0; round < 15; ++round) {
      SCOPED_TRACE(model + " round " + std::to_string(round));
      RawFilesClient c(server_->endpoint());
      ASSERT_TRUE(c.send(put_request(name, kMiB, round ? files::kPutResume : 0)));
      auto ready = c.reply();
      ASSERT_TRUE(ready && ready->type == files::Type::put_ready) << server_->log();
      EXPECT_EQ(ready->offset, round ? 1000u : 0u);
      if (round == 0) {
        ASSERT_TRUE(c.send_raw(sent));
      }
      ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
      ASSERT_EQ(c.wait_closed(5s), StreamEnd::eof);
      EXPECT_TRUE(unlocked(part));  // at once: no waiting for it
      EXPECT_TRUE(read_file(part) == sent);
      if (HasFailure()) return;
    }
  }
}

// One round trip (put, then get back) on a running server.
void round_trip(const std::string& target, const std::string& local_dir,
                std::vector<std::string> client_flags = {}) {
  const std::string content = pattern_bytes(kMiB + 1, 41);
  ASSERT_TRUE(write_file(local_dir + "/m.bin", content));
  std::vector<std::string> put{"put", target, local_dir + "/m.bin", "m.bin", "--json"};
  put.insert(put.end(), client_flags.begin(), client_flags.end());
  expect_verified(keel_client(put), content.size(), sha256_hex(content));
  std::vector<std::string> get{"get", target, "m.bin", local_dir + "/back.bin", "--json"};
  get.insert(get.end(), client_flags.begin(), client_flags.end());
  expect_verified(keel_client(get), content.size(), sha256_hex(content));
  EXPECT_TRUE(read_file(local_dir + "/back.bin") == content);
}

TEST_F(FilesTransfer, RoundTripUnderTheThreadsModel) {
  start({"--writable", "--model", "threads"});
  round_trip(server_->target(), local_);
  EXPECT_TRUE(read_file(root_ + "/m.bin") == read_file(local_ + "/m.bin"));
}

TEST_F(FilesTransfer, RoundTripUnderTheProcessesModel) {
  start({"--writable", "--model", "processes"});
  round_trip(server_->target(), local_);
  EXPECT_TRUE(read_file(root_ + "/m.bin") == read_file(local_ + "/m.bin"));
}

TEST_F(FilesTransfer, RoundTripOverTls) {
  TestCertificate cert;
  ASSERT_TRUE(cert.ok()) << "openssl could not make a test certificate";
  start({"--writable", "--tls-cert", cert.cert(), "--tls-key", cert.key()});
  round_trip(server_->target(), local_, {"--tls", "--ca", cert.cert()});
  EXPECT_TRUE(read_file(root_ + "/m.bin") == read_file(local_ + "/m.bin"));
  // Starting over ends the first connection's TLS session cleanly before the second's PUT.
  ASSERT_TRUE(write_file(part_of(root_, "again.bin"), "not the start of m.bin"));
  ClientRun again = keel_client({"put", server_->target(), local_ + "/m.bin", "again.bin",
                                 "--resume", "--json", "--tls", "--ca", cert.cert()});
  expect_verified(again, kMiB + 1, file_sha256_hex(local_ + "/m.bin"));
  EXPECT_EQ(again.json.value("resume_rejected", false), true) << again.out;
  EXPECT_TRUE(read_file(root_ + "/again.bin") == read_file(local_ + "/m.bin"));
  // Without our CA the certificate is not trusted: refused before any request.
  ClientRun untrusted = keel_client({"get", server_->target(), "m.bin", local_ + "/x", "--tls"});
  EXPECT_EQ(untrusted.code, 1) << untrusted.err;
  EXPECT_NE(untrusted.err.find("certificate verify failed"), std::string::npos) << untrusted.err;
  EXPECT_FALSE(fs::exists(local_ + "/x"));
}

// keel ls: kind, size, time and name per line (directories with a trailing '/'), and --json;
// an upload's part file is never listed.
TEST_F(FilesTransfer, LsListsFilesAndDirectoriesButNotPartFiles) {
  ASSERT_TRUE(write_file(root_ + "/notes.txt", "hello"));
  fs::create_directory(root_ + "/sub");
  ASSERT_TRUE(write_file(root_ + "/sub/inner.bin", std::string(1234, 'z')));
  ASSERT_TRUE(write_file(part_of(root_, "half.bin"), "partial"));
  start({});

  ClientRun plain = keel_client({"ls", server_->target()});
  ASSERT_EQ(plain.code, 0) << plain.err;
  const std::string when = R"(\d{4}-\d\d-\d\d \d\d:\d\d)";
  EXPECT_TRUE(std::regex_match(plain.out, std::regex("-            5  " + when + "  notes\\.txt\n" +
                                                     "d            -  " + when + "  sub/\n")))
      << plain.out;

  ClientRun json = keel_client({"ls", server_->target(), "--json"});
  ASSERT_EQ(json.code, 0) << json.err;
  ASSERT_TRUE(json.json.is_object()) << json.out;
  EXPECT_EQ(json.json["dir"], "");
  EXPECT_EQ(json.json["truncated"], false);
  const Json& entries = json.json["entries"];
  ASSERT_EQ(entries.size(), 2u) << json.out;
  EXPECT_EQ(entries[0]["name"], "notes.txt");
  EXPECT_EQ(entries[0]["kind"], "file");
  EXPECT_EQ(entries[0]["size"], 5);
  EXPECT_GT(entries[0]["mtime_ns"].get<int64_t>(), 0);
  EXPECT_EQ(entries[1]["name"], "sub");
  EXPECT_EQ(entries[1]["kind"], "directory");

  ClientRun sub = keel_client({"ls", server_->target(), "sub", "--json"});
  ASSERT_EQ(sub.code, 0) << sub.err;
  ASSERT_EQ(sub.json["entries"].size(), 1u) << sub.out;
  EXPECT_EQ(sub.json["dir"], "sub");
  EXPECT_EQ(sub.json["entries"][0]["name"], "inner.bin");
  EXPECT_EQ(sub.json["entries"][0]["size"], 1234);

  ClientRun file = keel_client({"ls", server_->target(), "notes.txt"});
  EXPECT_EQ(file.code, 1);
  EXPECT_NE(file.err.find("not_a_directory"), std::string::npos) << file.err;
}

}  // namespace
}  // namespace keel::test::files_e2e
