// FileRoot's uploads (src/services/files/root.h): a part file beside the target, locked so a
// second upload of the same name is busy, kept for a resume, and renamed into place so the target
// is only ever a whole file (RENAME_NOREPLACE: a writer that got there first wins).
#include <sys/file.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "files_root_fixture.h"
#include "services/files/part_lock.h"

namespace keel::files {
namespace {

class FileRootUpload : public FileTreeTest {
 protected:
  void SetUp() override {
    FileTreeTest::SetUp();
    fs::create_directory(root_ / "sub");
    files_ = std::make_unique<FileRoot>(root_.string());
  }

  // begin_upload that must succeed.
  FileRoot::Upload begin(const PathComponents& path, uint64_t size, bool resume = false,
                         bool replace = false) {
    FileRoot::Upload upload;
    Failure failure;
    EXPECT_TRUE(files_->begin_upload(path, size, resume, replace, upload, failure))
        << shown_path(path) << ": " << failure.message;
    return upload;
  }
  // The failure of a begin_upload that must fail.
  Failure refused(const PathComponents& path, bool replace = false) {
    FileRoot::Upload upload;
    Failure failure;
    EXPECT_FALSE(files_->begin_upload(path, 1, false, replace, upload, failure))
        << shown_path(path);
    EXPECT_FALSE(upload.active());
    return failure;
  }

  std::unique_ptr<FileRoot> files_;
};

TEST_F(FileRootUpload, BeginWriteCommitPutsTheWholeFileInPlace) {
  FileRoot::Upload upload = begin({"sub", "f"}, 11);
  ASSERT_TRUE(upload.active());
  EXPECT_EQ(upload.held, 0u);
  EXPECT_EQ(upload.name, "f");
  EXPECT_TRUE(fs::is_regular_file(root_ / "sub" / ".f.keel-part"));
  EXPECT_EQ(fs::status(root_ / "sub" / ".f.keel-part").permissions() & fs::perms::others_write,
            fs::perms::none);
  write_fd(upload.part_fd.get(), "hello world", 0);
  EXPECT_FALSE(fs::exists(root_ / "sub" / "f"));  // nothing at the target until the commit
  std::vector<Entry> entries;
  bool truncated = false;
  Failure failure;
  ASSERT_TRUE(files_->list({"sub"}, 10, entries, truncated, failure));
  EXPECT_TRUE(entries.empty());  // the part file is not listed
  ASSERT_TRUE(files_->commit_upload(upload, false, failure)) << failure.message;
  EXPECT_FALSE(upload.active());
  EXPECT_EQ(read(root_ / "sub" / "f"), "hello world");
  EXPECT_FALSE(fs::exists(root_ / "sub" / ".f.keel-part"));
  // The name is free again: a new upload of it begins (and finds the file there).
  EXPECT_EQ(refused({"sub", "f"}).code, ErrorCode::exists);
}

TEST_F(FileRootUpload, DiscardRemovesThePartFileAndLeavesNoTarget) {
  FileRoot::Upload upload = begin({"f"}, 3);
  write_fd(upload.part_fd.get(), "abc", 0);
  files_->discard_upload(upload);
  EXPECT_FALSE(upload.active());
  EXPECT_FALSE(fs::exists(root_ / ".f.keel-part"));
  EXPECT_FALSE(fs::exists(root_ / "f"));
  files_->discard_upload(upload);  // a second discard is a no-op
}

TEST_F(FileRootUpload, ADroppedUploadKeepsItsBytesAndAResumeContinuesThem) {
  {
    FileRoot::Upload upload = begin({"sub", "f"}, 11);
    write_fd(upload.part_fd.get(), "hello", 0);
  }  // the connection was cut: closed, not discarded
  EXPECT_EQ(read(root_ / "sub" / ".f.keel-part"), "hello");
  FileRoot::Upload upload = begin({"sub", "f"}, 11, /*resume=*/true);
  EXPECT_EQ(upload.held, 5u);
  write_fd(upload.part_fd.get(), " world", 5);
  Failure failure;
  ASSERT_TRUE(files_->commit_upload(upload, false, failure)) << failure.message;
  EXPECT_EQ(read(root_ / "sub" / "f"), "hello world");
}

TEST_F(FileRootUpload, AResumeOfMoreThanTheSizeOrNoResumeStartsFromNothing) {
  write(root_ / ".f.keel-part", "0123456789");
  FileRoot::Upload upload = begin({"f"}, 10, /*resume=*/true);
  EXPECT_EQ(upload.held, 10u);  // exactly the size: kept
  files_->discard_upload(upload);
  write(root_ / ".f.keel-part", "0123456789");
  upload = begin({"f"}, 9, /*resume=*/true);
  EXPECT_EQ(upload.held, 0u);
  EXPECT_EQ(read(root_ / ".f.keel-part"), "");
  upload = FileRoot::Upload{};
  write(root_ / ".f.keel-part", "0123456789");
  upload = begin({"f"}, 100, /*resume=*/false);
  EXPECT_EQ(upload.held, 0u);
  EXPECT_EQ(read(root_ / ".f.keel-part"), "");
}

TEST_F(FileRootUpload, AnExistingTargetIsExistsWithoutReplaceAndReplacedWithIt) {
  write(root_ / "f", "old");
  Failure failure = refused({"f"});
  EXPECT_EQ(failure.code, ErrorCode::exists);
  EXPECT_EQ(failure.message, "f already exists");
  EXPECT_FALSE(fs::exists(root_ / ".f.keel-part"));  // a refused upload leaves nothing
  FileRoot::Upload upload = begin({"f"}, 3, false, /*replace=*/true);
  write_fd(upload.part_fd.get(), "new", 0);
  ASSERT_TRUE(files_->commit_upload(upload, true, failure)) << failure.message;
  EXPECT_EQ(read(root_ / "f"), "new");
}

TEST_F(FileRootUpload, ReplacingASymlinkReplacesTheLinkNotItsTarget) {
  write(root_ / "target", "keep");
  fs::create_symlink("target", root_ / "link");
  EXPECT_EQ(refused({"link"}).code, ErrorCode::exists);
  FileRoot::Upload upload = begin({"link"}, 3, false, /*replace=*/true);
  write_fd(upload.part_fd.get(), "new", 0);
  Failure failure;
  ASSERT_TRUE(files_->commit_upload(upload, true, failure)) << failure.message;
  EXPECT_FALSE(fs::is_symlink(root_ / "link"));
  EXPECT_EQ(read(root_ / "link"), "new");
  EXPECT_EQ(read(root_ / "target"), "keep");
}

TEST_F(FileRootUpload, TargetsThatAreNotFilesAndMissingDirectoriesAreRefused) {
  write(root_ / "file", "x");
  ASSERT_EQ(::mkfifo((root_ / "fifo").c_str(), 0644), 0);
  EXPECT_EQ(refused({"sub"}, true).code, ErrorCode::not_a_file);
  EXPECT_EQ(refused({"fifo"}, true).code, ErrorCode::not_a_file);
  EXPECT_EQ(refused({}, true).code, ErrorCode::not_a_file);
  Failure failure = refused({"nope", "f"});
  EXPECT_EQ(failure.code, ErrorCode::not_found);
  EXPECT_EQ(failure.message, "the directory nope does not exist");
  EXPECT_EQ(refused({"file", "f"}).code, ErrorCode::not_found);
  EXPECT_EQ(refused({"sub", ".f.keel-part"}).code, ErrorCode::not_allowed);
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ / "sub"), fs::directory_iterator()), 0);
}

TEST_F(FileRootUpload, ASymlinkPlantedAtThePartNameIsNotWrittenThrough) {
  fs::create_symlink("../outside/secret", root_ / ".f.keel-part");
  Failure failure = refused({"f"});
  EXPECT_EQ(failure.code, ErrorCode::not_allowed) << failure.message;
  EXPECT_EQ(read(outside_ / "secret"), "outside the root");
}

TEST_F(FileRootUpload, ASecondUploadOfTheSameNameIsBusyAndOtherNamesAreNot) {
  FileRoot::Upload first = begin({"sub", "f"}, 1, false, false);
  Failure failure = refused({"sub", "f"}, true);
  EXPECT_EQ(failure.code, ErrorCode::busy);
  EXPECT_EQ(failure.message, "another upload of sub/f is in progress");
  // Another FileRoot on the same directory (as another worker process would have) is busy too.
  FileRoot other(root_.string());
  FileRoot::Upload second;
  EXPECT_FALSE(other.begin_upload({"sub", "f"}, 1, false, false, second, failure));
  EXPECT_EQ(failure.code, ErrorCode::busy);
  FileRoot::Upload unrelated = begin({"sub", "g"}, 1);
  EXPECT_TRUE(unrelated.active());
  files_->discard_upload(first);
  second = begin({"sub", "f"}, 1);
  EXPECT_TRUE(second.active());
}

TEST_F(FileRootUpload, ACommitLosesToAWriterThatGotThereFirst) {
  FileRoot::Upload upload = begin({"f"}, 4);
  write_fd(upload.part_fd.get(), "ours", 0);
  write(root_ / "f", "theirs, whole");
  Failure failure;
  EXPECT_FALSE(files_->commit_upload(upload, false, failure));
  EXPECT_EQ(failure.code, ErrorCode::exists);
  EXPECT_EQ(read(root_ / "f"), "theirs, whole");
  EXPECT_FALSE(fs::exists(root_ / ".f.keel-part"));
  EXPECT_FALSE(upload.active());
}

// The race part_lock.h describes, made to happen: a second upload opens the part file, then the
// first commits it (rename, close) before the second locks. The second must end up with a fresh
// part file of its own, and the committed file must be left alone.
TEST_F(FileRootUpload, AnUploadThatOpenedThePartFileJustBeforeItsCommitLocksAFreshOne) {
  FileRoot::Upload first = begin({"f"}, 5);
  write_fd(first.part_fd.get(), "first", 0);
  UniqueFd dir(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd second;
  bool committed = false;
  int err = lock_part_file(dir.get(), ".f.keel-part", second, [&] {
    Failure failure;
    committed = files_->commit_upload(first, false, failure);
    EXPECT_TRUE(committed) << failure.message;
  });
  ASSERT_EQ(err, 0);
  ASSERT_TRUE(committed);
  struct stat part, target;
  ASSERT_EQ(::fstat(second.get(), &part), 0);
  ASSERT_EQ(::stat((root_ / "f").c_str(), &target), 0);
  EXPECT_NE(part.st_ino, target.st_ino);  // not the file that was committed under it
  EXPECT_TRUE(names_open_file(dir.get(), ".f.keel-part", second.get()));
  EXPECT_EQ(part.st_size, 0);
  EXPECT_EQ(read(root_ / "f"), "first");
  // And the fresh part file is locked: an upload of the name is busy.
  EXPECT_EQ(refused({"f"}, true).code, ErrorCode::busy);
}

// Threads upload one name at once, each with its own content; every upload either ends with a
// whole commit or with busy / exists, never with an error or a mixed file. Without replace exactly
// one wins; with replace they take turns, which also runs commits against uploads that opened the
// part file just before it was renamed (root_upload.cc, the locking story).
void race(FileRoot& files, const fs::path& target, bool replace, int rounds,
          std::vector<std::string>& contents, std::atomic<int>& wins) {
  std::vector<std::jthread> threads;
  for (size_t t = 0; t < contents.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < rounds;) {
        FileRoot::Upload upload;
        Failure failure;
        if (!files.begin_upload({target.filename().string()}, contents[t].size(), false, replace,
                                upload, failure)) {
          if (failure.code == ErrorCode::busy) {
            std::this_thread::yield();
            continue;
          }
          EXPECT_EQ(failure.code, ErrorCode::exists) << failure.message;
          return;
        }
        ASSERT_EQ(::pwrite(upload.part_fd.get(), contents[t].data(), contents[t].size(), 0),
                  static_cast<ssize_t>(contents[t].size()));
        if (files.commit_upload(upload, replace, failure)) {
          ++wins;
          ++round;
        } else {
          EXPECT_EQ(failure.code, ErrorCode::exists) << failure.message;
          return;
        }
      }
    });
  }
}

TEST_F(FileRootUpload, ConcurrentUploadsOfOneNameWithoutReplaceOneWinsWhole) {
  std::vector<std::string> contents = {std::string(100'000, 'a'), std::string(70'000, 'b'),
                                       std::string(130'000, 'c')};
  std::atomic<int> wins = 0;
  race(*files_, root_ / "f", false, 1, contents, wins);
  EXPECT_EQ(wins, 1);
  std::string landed = read(root_ / "f");
  EXPECT_NE(std::find(contents.begin(), contents.end(), landed), contents.end())
      << landed.size() << " bytes";
  EXPECT_FALSE(fs::exists(root_ / ".f.keel-part"));
}

TEST_F(FileRootUpload, ConcurrentReplacingUploadsOfOneNameEachCommitWhole) {
  std::vector<std::string> contents = {std::string(3'000, 'a'), std::string(5'000, 'b')};
  std::atomic<int> wins = 0;
  race(*files_, root_ / "f", true, 40, contents, wins);
  EXPECT_EQ(wins, 80);
  std::string landed = read(root_ / "f");
  EXPECT_NE(std::find(contents.begin(), contents.end(), landed), contents.end())
      << landed.size() << " bytes";
  EXPECT_FALSE(fs::exists(root_ / ".f.keel-part"));
}

}  // namespace
}  // namespace keel::files
