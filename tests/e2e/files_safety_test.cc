// keel files keeps to its root and its limits: traversal by "..", absolute paths, symlinks that
// lead out and NUL bytes is refused with nothing outside read or written; racing uploads of one
// name leave one whole file; a read-only server writes nothing; --max-file-bytes,
// --max-transfers and --idle-timeout hold.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "e2e/files_util.h"

namespace keel::test::files_e2e {
namespace {

using files::ErrorCode;
using files::Type;

const std::string kSecret = "the bytes outside the root\n";

// DIR/root is served; beside it DIR/x and DIR/outside/secret.txt, which no request may reach;
// in the root, out -> ../outside, etc -> /etc, file-link -> ../outside/secret.txt, a/ and
// in.txt.
class FilesSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tree_.path().empty());
    root_ = tree_.dir("root");
    outside_ = tree_.dir("outside");
    local_ = tree_.dir("local");
    ASSERT_TRUE(write_file(tree_.path() + "/x", kSecret));
    ASSERT_TRUE(write_file(outside_ + "/secret.txt", kSecret));
    ASSERT_TRUE(write_file(root_ + "/in.txt", "inside\n"));
    fs::create_directory(root_ + "/a");
    fs::create_directory_symlink("../outside", root_ + "/out");
    fs::create_directory_symlink("/etc", root_ + "/etc");
    fs::create_symlink("../outside/secret.txt", root_ + "/file-link");
    ASSERT_TRUE(write_file(local_ + "/upload.txt", "uploaded\n"));
  }

  void start(std::vector<std::string> extra = {"--writable"}) {
    server_ = std::make_unique<FilesServer>(root_, std::move(extra));
    ASSERT_TRUE(server_->ok()) << server_->log();
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->stop(), 0);
    }
  }

  // What lies outside the root, to compare before and after.
  std::set<std::string> outside_names() const {
    std::set<std::string> all = names_in(tree_.path());
    for (const std::string& name : names_in(outside_)) all.insert("outside/" + name);
    return all;
  }

  ScratchTree tree_;
  std::string root_, outside_, local_;
  std::unique_ptr<FilesServer> server_;
};

const std::vector<std::string> kEscapes = {
    "../x", "/etc/passwd", "a/../../x", "out/secret.txt", "etc/passwd", "file-link", "a/../in.txt",
};

TEST_F(FilesSafety, GetAndLsRefuseEveryWayOut) {
  start();
  for (const std::string& path : kEscapes) {
    SCOPED_TRACE(path);
    ClientRun get = keel_client({"get", server_->target(), path, local_ + "/got"});
    EXPECT_EQ(get.code, 1) << get.err;
    EXPECT_NE(get.err.find("not_allowed"), std::string::npos) << get.err;
    EXPECT_EQ(get.err.find(kSecret), std::string::npos);
    // Nothing was written here either, not even an empty part file.
    EXPECT_EQ(names_in(local_), std::set<std::string>{"upload.txt"});
  }
  for (std::string dir : {"..", "/", "out", "etc", "a/../.."}) {
    SCOPED_TRACE(dir);
    ClientRun ls = keel_client({"ls", server_->target(), dir});
    EXPECT_EQ(ls.code, 1) << ls.out << ls.err;
    EXPECT_NE(ls.err.find("not_allowed"), std::string::npos) << ls.err;
    EXPECT_EQ(ls.out, "");
  }
}

TEST_F(FilesSafety, PutRefusesEveryWayOutAndWritesNothingOutside) {
  start();
  const std::set<std::string> before = outside_names();
  const std::set<std::string> root_before = names_in(root_);
  for (std::string path :
       {"../y", "/tmp/keel-files-test-absolute", "a/../../y", "out/new.txt", "etc/keel-evil"}) {
    SCOPED_TRACE(path);
    ClientRun put = keel_client({"put", server_->target(), local_ + "/upload.txt", path});
    EXPECT_EQ(put.code, 1) << put.err;
    EXPECT_NE(put.err.find("not_allowed"), std::string::npos) << put.err;
  }
  EXPECT_EQ(outside_names(), before);
  EXPECT_EQ(names_in(root_), root_before);
  EXPECT_FALSE(fs::exists("/tmp/keel-files-test-absolute"));
  EXPECT_FALSE(fs::exists("/etc/keel-evil"));
  EXPECT_TRUE(read_file(outside_ + "/secret.txt") == kSecret);
}

// A symlink where the upload goes is replaced itself (with --force), never written through; a
// symlink planted as the part file is refused.
TEST_F(FilesSafety, PutNeverWritesThroughASymlink) {
  start();
  ClientRun keep = keel_client({"put", server_->target(), local_ + "/upload.txt", "file-link"});
  EXPECT_EQ(keep.code, 1) << keep.err;
  EXPECT_NE(keep.err.find("exists"), std::string::npos) << keep.err;
  ClientRun force =
      keel_client({"put", server_->target(), local_ + "/upload.txt", "file-link", "-f"});
  EXPECT_EQ(force.code, 0) << force.err;
  EXPECT_FALSE(fs::is_symlink(root_ + "/file-link"));
  EXPECT_TRUE(read_file(root_ + "/file-link") == "uploaded\n");
  EXPECT_TRUE(read_file(outside_ + "/secret.txt") == kSecret);

  fs::create_symlink("../outside/secret.txt", part_of(root_, "victim.txt"));
  for (const char* flag : {"--resume", "-f"}) {
    ClientRun planted =
        keel_client({"put", server_->target(), local_ + "/upload.txt", "victim.txt", flag});
    EXPECT_EQ(planted.code, 1) << planted.err;
    EXPECT_NE(planted.err.find("not_allowed"), std::string::npos) << planted.err;
  }
  EXPECT_TRUE(read_file(outside_ + "/secret.txt") == kSecret);
  EXPECT_FALSE(fs::exists(root_ + "/victim.txt"));
}

// What the CLI cannot send: a NUL byte in a path, for every request that takes one. Each is
// refused with not_allowed and the connection stays usable.
TEST_F(FilesSafety, RawRequestsWithANulByteAreRefused) {
  start();
  RawFilesClient c(server_->endpoint());
  ASSERT_TRUE(c.connected());
  const std::string nul_paths[] = {std::string("in.txt\0", 7), std::string("in\0.txt", 7),
                                   std::string("a\0/../../x", 10)};
  for (const std::string& path : nul_paths) {
    for (Type type : {Type::list, Type::stat, Type::get, Type::hash, Type::put}) {
      SCOPED_TRACE(std::string(files::to_string(type)) + " of a " + std::to_string(path.size()) +
                   "-byte path");
      ASSERT_TRUE(c.send(type == Type::put ? put_request(path, 5) : path_request(type, path)));
      auto reply = c.reply();
      ASSERT_TRUE(reply) << server_->log();
      EXPECT_EQ(reply->type, Type::error);
      EXPECT_EQ(reply->code, ErrorCode::not_allowed) << reply->message;
      EXPECT_NE(reply->message.find("NUL"), std::string::npos) << reply->message;
    }
  }
  for (const std::string& path : kEscapes) {
    SCOPED_TRACE(path);
    ASSERT_TRUE(c.send(path_request(Type::get, path)));
    auto reply = c.reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->type, Type::error);
    EXPECT_EQ(reply->code, ErrorCode::not_allowed) << reply->message;
  }
  ASSERT_TRUE(c.send(path_request(Type::stat, "in.txt")));
  auto still = c.reply();
  ASSERT_TRUE(still);
  EXPECT_EQ(still->type, Type::stat_reply);
  EXPECT_EQ(still->size, 7u);
  EXPECT_EQ(names_in(root_), (std::set<std::string>{"a", "etc", "file-link", "in.txt", "out"}));
}

// Several puts of different contents to one name at once, a few rounds: one wins, the others
// are told exists or busy, and the file is the winner's, whole. With -f every one may win in
// turn (or be busy), and the file is one of theirs, whole.
TEST_F(FilesSafety, ConcurrentUploadsOfOneNameLeaveOneWholeFile) {
  start();
  constexpr int kUploaders = 3;
  std::vector<std::string> contents;
  for (int i = 0; i < kUploaders; ++i) {
    contents.push_back(pattern_bytes(2 * kMiB, static_cast<uint32_t>(100 + i)));
    ASSERT_TRUE(write_file(local_ + "/c" + std::to_string(i), contents.back()));
  }
  for (bool force : {false, true}) {
    for (int round = 0; round < 4; ++round) {
      const std::string name = std::string(force ? "forced" : "plain") + std::to_string(round);
      SCOPED_TRACE(name);
      std::vector<std::unique_ptr<Subprocess>> uploads;
      for (int i = 0; i < kUploaders; ++i) {
        std::vector<std::string> args{
            kKeel, "put", server_->target(), local_ + "/c" + std::to_string(i), name, "-q"};
        if (force) args.push_back("-f");
        uploads.push_back(std::make_unique<Subprocess>(args));
      }
      std::vector<int> won;
      for (int i = 0; i < kUploaders; ++i) {
        int code = uploads[i]->wait(30s).value_or(-1);
        std::string err = uploads[i]->err();
        if (code == 0) {
          won.push_back(i);
          continue;
        }
        EXPECT_EQ(code, 1) << err;
        bool told = err.find("busy") != std::string::npos ||
                    (!force && err.find("exists") != std::string::npos);
        EXPECT_TRUE(told) << err;
      }
      std::optional<std::string> final_bytes = read_file(root_ + "/" + name);
      ASSERT_TRUE(final_bytes);
      if (!force) {
        ASSERT_EQ(won.size(), 1u);
        EXPECT_TRUE(*final_bytes == contents[won[0]]) << "not the winner's file";
      } else {
        ASSERT_GE(won.size(), 1u);
        bool one_of_them =
            std::any_of(won.begin(), won.end(), [&](int i) { return *final_bytes == contents[i]; });
        EXPECT_TRUE(one_of_them) << "not one whole upload";
      }
      EXPECT_FALSE(fs::exists(part_of(root_, name)));
    }
  }
}

TEST_F(FilesSafety, ReadOnlyServerRefusesPut) {
  start({});
  const std::set<std::string> before = names_in(root_);
  ClientRun put = keel_client({"put", server_->target(), local_ + "/upload.txt", "new.txt"});
  EXPECT_EQ(put.code, 1) << put.err;
  EXPECT_NE(put.err.find("not_allowed"), std::string::npos) << put.err;
  EXPECT_NE(put.err.find("read-only"), std::string::npos) << put.err;
  ClientRun forced =
      keel_client({"put", server_->target(), local_ + "/upload.txt", "in.txt", "-f", "--resume"});
  EXPECT_EQ(forced.code, 1) << forced.err;
  EXPECT_EQ(names_in(root_), before);
  EXPECT_TRUE(read_file(root_ + "/in.txt") == "inside\n");
  // Reading still works.
  ClientRun get = keel_client({"get", server_->target(), "in.txt", local_ + "/in.txt"});
  EXPECT_EQ(get.code, 0) << get.err;
}

TEST_F(FilesSafety, MaxFileBytesRefusesABiggerUpload) {
  start({"--writable", "--max-file-bytes", "1K"});
  ASSERT_TRUE(write_file(local_ + "/over", std::string(1025, 'o')));
  ASSERT_TRUE(write_file(local_ + "/at", std::string(1024, 'a')));
  ClientRun over = keel_client({"put", server_->target(), local_ + "/over", "over"});
  EXPECT_EQ(over.code, 1) << over.err;
  EXPECT_NE(over.err.find("too_large"), std::string::npos) << over.err;
  EXPECT_FALSE(fs::exists(root_ + "/over"));
  EXPECT_FALSE(fs::exists(part_of(root_, "over")));
  ClientRun at = keel_client({"put", server_->target(), local_ + "/at", "at"});
  EXPECT_EQ(at.code, 0) << at.err;
  EXPECT_EQ(file_size_or_zero(root_ + "/at"), 1024u);
}

// An upload that has begun and then stalls (a raw client: PUT, some bytes, then nothing) holds
// the only transfer: another upload and a download are told busy, until it goes.
TEST_F(FilesSafety, MaxTransfersOneMakesTheNextTransferBusy) {
  start({"--writable", "--max-transfers", "1"});
  RawFilesClient stalled(server_->endpoint());
  ASSERT_TRUE(stalled.send(put_request("stalled.bin", kMiB)));
  auto ready = stalled.reply();
  ASSERT_TRUE(ready && ready->type == Type::put_ready) << server_->log();
  ASSERT_TRUE(stalled.send_raw(std::string(1000, 's')));
  ASSERT_TRUE(eventually([&] { return file_size_or_zero(part_of(root_, "stalled.bin")) == 1000; }));

  ClientRun put = keel_client({"put", server_->target(), local_ + "/upload.txt", "other.txt"});
  EXPECT_EQ(put.code, 1) << put.err;
  EXPECT_NE(put.err.find("busy"), std::string::npos) << put.err;
  ClientRun get = keel_client({"get", server_->target(), "in.txt", local_ + "/in.txt"});
  EXPECT_EQ(get.code, 1) << get.err;
  EXPECT_NE(get.err.find("busy"), std::string::npos) << get.err;
  EXPECT_FALSE(fs::exists(root_ + "/other.txt"));

  stalled.close();  // its slot comes back once the server has seen it go
  EXPECT_TRUE(eventually(
      [&] {
        return keel_client({"get", server_->target(), "in.txt", local_ + "/in.txt"}).code == 0;
      },
      5s));
  EXPECT_TRUE(read_file(local_ + "/in.txt") == "inside\n");
}

// An upload that stalls past --idle-timeout is dropped, and its part file with it, whichever
// model runs the connection.
TEST_F(FilesSafety, StalledUploadIsDroppedAfterTheIdleTimeout) {
  const std::string part = part_of(root_, "stall.bin");
  for (std::string model : {"reactor", "threads", "processes"}) {
    SCOPED_TRACE(model);
    FilesServer server(root_, {"--writable", "--idle-timeout", "1", "--model", model});
    ASSERT_TRUE(server.ok()) << server.log();
    RawFilesClient stalled(server.endpoint());
    const auto began = Clock::now();
    ASSERT_TRUE(stalled.send(put_request("stall.bin", kMiB)));
    auto ready = stalled.reply();
    ASSERT_TRUE(ready && ready->type == Type::put_ready) << server.log();
    ASSERT_TRUE(stalled.send_raw(std::string(1000, 's')));
    ASSERT_TRUE(eventually([&] { return file_size_or_zero(part) == 1000; }));
    EXPECT_TRUE(eventually([&] { return !fs::exists(part); }, 5s)) << server.log();
    EXPECT_GE(Clock::now() - began, 1s);
    EXPECT_EQ(stalled.wait_closed(5s), StreamEnd::eof);
    EXPECT_FALSE(fs::exists(root_ + "/stall.bin"));
    EXPECT_EQ(server.stop(), 0);
  }
}

}  // namespace
}  // namespace keel::test::files_e2e
