// FileRoot's reading side (src/services/files/root.h): open, stat and list beneath the served
// root, with openat2 and with the strict walk for kernels without it; paths that climb out, by
// component or by symlink, are refused and nothing outside is opened.
#include <sys/socket.h>
#include <sys/un.h>

#include <vector>

#include "files_root_fixture.h"
#include "keel/error.h"

namespace keel::files {
namespace {

constexpr int64_t kMtimeNs = 1'700'000'000'123'456'789;

// Every test here runs with both resolutions.
class FileRootBoth : public FileTreeTest, public ::testing::WithParamInterface<Resolution> {
 protected:
  FileRoot make_root() const { return FileRoot(root_.string(), GetParam()); }

  // The codes open_file, stat and list give for path (code io when the call succeeded).
  struct Codes {
    ErrorCode open, stat, list;
  };
  Codes codes_for(const FileRoot& files, const PathComponents& path) const {
    Codes codes{ErrorCode::io, ErrorCode::io, ErrorCode::io};
    Failure failure;
    FileRoot::OpenedFile opened;
    if (!files.open_file(path, opened, failure)) codes.open = failure.code;
    EXPECT_FALSE(opened.fd.valid() && codes.open != ErrorCode::io);
    Entry entry;
    if (!files.stat(path, entry, failure)) codes.stat = failure.code;
    std::vector<Entry> entries;
    bool truncated = false;
    if (!files.list(path, 100, entries, truncated, failure)) codes.list = failure.code;
    return codes;
  }
};

INSTANTIATE_TEST_SUITE_P(FileRoot, FileRootBoth,
                         ::testing::Values(Resolution::openat2, Resolution::strict_walk),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST_P(FileRootBoth, OpenFileGivesTheFileWithItsSizeMtimeAndIdentity) {
  fs::create_directory(root_ / "sub");
  write(root_ / "sub" / "a.txt", "hello");
  set_mtime_ns(root_ / "sub" / "a.txt", kMtimeNs);
  FileRoot files = make_root();
  FileRoot::OpenedFile opened;
  Failure failure;
  ASSERT_TRUE(files.open_file({"sub", "a.txt"}, opened, failure)) << failure.message;
  EXPECT_EQ(opened.size, 5u);
  EXPECT_EQ(opened.mtime_ns, kMtimeNs);
  struct stat st;
  ASSERT_EQ(::stat((root_ / "sub" / "a.txt").c_str(), &st), 0);
  EXPECT_EQ(opened.device, st.st_dev);
  EXPECT_EQ(opened.inode, st.st_ino);
  EXPECT_EQ(read_fd(opened.fd.get()), "hello");
  EXPECT_EQ(::fcntl(opened.fd.get(), F_GETFL) & (O_NONBLOCK | O_ACCMODE), O_RDONLY);
  EXPECT_EQ(::fcntl(opened.fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST_P(FileRootBoth, OpenFileRefusesADirectoryAFifoAndASocketWithoutBlocking) {
  fs::create_directory(root_ / "dir");
  ASSERT_EQ(::mkfifo((root_ / "fifo").c_str(), 0644), 0);
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string socket_path = (root_ / "socket").string();
  ASSERT_LT(socket_path.size(), sizeof address.sun_path);
  socket_path.copy(address.sun_path, socket_path.size());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ::close(sock);
  FileRoot files = make_root();
  for (const PathComponents& path : {PathComponents{"dir"}, PathComponents{"fifo"},
                                     PathComponents{"socket"}, PathComponents{}}) {
    FileRoot::OpenedFile opened;
    Failure failure;
    EXPECT_FALSE(files.open_file(path, opened, failure)) << shown_path(path);
    EXPECT_EQ(failure.code, ErrorCode::not_a_file) << shown_path(path) << ": " << failure.message;
    EXPECT_FALSE(opened.fd.valid());
  }
}

TEST_P(FileRootBoth, StatReportsKindSizeMtimeAndTheLastComponent) {
  fs::create_directories(root_ / "a" / "b");
  write(root_ / "a" / "b" / "f", "12345678");
  set_mtime_ns(root_ / "a" / "b" / "f", kMtimeNs);
  set_mtime_ns(root_ / "a" / "b", kMtimeNs + 1);
  ASSERT_EQ(::mkfifo((root_ / "a" / "fifo").c_str(), 0644), 0);
  FileRoot files = make_root();
  Entry entry;
  Failure failure;
  ASSERT_TRUE(files.stat({"a", "b", "f"}, entry, failure)) << failure.message;
  EXPECT_EQ(entry.name, "f");
  EXPECT_EQ(entry.kind, Kind::file);
  EXPECT_EQ(entry.size, 8u);
  EXPECT_EQ(entry.mtime_ns, kMtimeNs);
  ASSERT_TRUE(files.stat({"a", "b"}, entry, failure)) << failure.message;
  EXPECT_EQ(entry.name, "b");
  EXPECT_EQ(entry.kind, Kind::directory);
  EXPECT_EQ(entry.size, 0u);
  EXPECT_EQ(entry.mtime_ns, kMtimeNs + 1);
  ASSERT_TRUE(files.stat({"a", "fifo"}, entry, failure)) << failure.message;
  EXPECT_EQ(entry.kind, Kind::other);
  ASSERT_TRUE(files.stat({}, entry, failure)) << failure.message;
  EXPECT_EQ(entry.name, "");
  EXPECT_EQ(entry.kind, Kind::directory);
}

TEST_P(FileRootBoth, MissingPathsAndPathsThroughAFileAreNotFound) {
  write(root_ / "file", "x");
  FileRoot files = make_root();
  for (const PathComponents& path :
       {PathComponents{"nope"}, PathComponents{"nope", "deeper"}, PathComponents{"file", "x"}}) {
    Codes codes = codes_for(files, path);
    EXPECT_EQ(codes.open, ErrorCode::not_found) << shown_path(path);
    EXPECT_EQ(codes.stat, ErrorCode::not_found) << shown_path(path);
    EXPECT_EQ(codes.list, ErrorCode::not_found) << shown_path(path);
  }
}

TEST_P(FileRootBoth, ListIsSortedWithKindsSizesAndMtimesAndHidesPartFiles) {
  write(root_ / "b", "bb");
  write(root_ / "a", "a");
  write(root_ / "C", "ccc");
  write(root_ / ".hidden", "");
  write(root_ / "x.keel-part", "not reserved: no leading dot");
  write(root_ / ".upload.keel-part", "reserved");
  write(root_ / ".keel-part", "reserved");
  fs::create_directory(root_ / "d");
  ASSERT_EQ(::mkfifo((root_ / "fifo").c_str(), 0644), 0);
  set_mtime_ns(root_ / "a", kMtimeNs);
  FileRoot files = make_root();
  std::vector<Entry> entries;
  bool truncated = true;
  Failure failure;
  ASSERT_TRUE(files.list({}, 100, entries, truncated, failure)) << failure.message;
  EXPECT_FALSE(truncated);
  std::vector<std::string> names;
  for (const Entry& entry : entries) names.push_back(entry.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{".hidden", "C", "a", "b", "d", "fifo", "x.keel-part"}));
  EXPECT_EQ(entries[2].kind, Kind::file);
  EXPECT_EQ(entries[2].size, 1u);
  EXPECT_EQ(entries[2].mtime_ns, kMtimeNs);
  EXPECT_EQ(entries[1].size, 3u);
  EXPECT_EQ(entries[4].kind, Kind::directory);
  EXPECT_EQ(entries[4].size, 0u);
  EXPECT_EQ(entries[5].kind, Kind::other);
}

TEST_P(FileRootBoth, ListStopsAtTheCap) {
  fs::create_directory(root_ / "d");
  for (char c : std::string("edcba")) write(root_ / "d" / std::string(1, c), "");
  write(root_ / "d" / ".f.keel-part", "");  // not counted
  FileRoot files = make_root();
  std::vector<Entry> entries;
  bool truncated = false;
  Failure failure;
  ASSERT_TRUE(files.list({"d"}, 3, entries, truncated, failure)) << failure.message;
  EXPECT_TRUE(truncated);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_TRUE(entries[0].name < entries[1].name && entries[1].name < entries[2].name);
  ASSERT_TRUE(files.list({"d"}, 5, entries, truncated, failure)) << failure.message;
  EXPECT_FALSE(truncated);
  EXPECT_EQ(entries.size(), 5u);
  ASSERT_TRUE(files.list({"d"}, 0, entries, truncated, failure)) << failure.message;
  EXPECT_TRUE(truncated);
  EXPECT_TRUE(entries.empty());
}

TEST_P(FileRootBoth, ListOfAFileIsNotADirectory) {
  write(root_ / "file", "x");
  FileRoot files = make_root();
  std::vector<Entry> entries;
  bool truncated = false;
  Failure failure;
  EXPECT_FALSE(files.list({"file"}, 10, entries, truncated, failure));
  EXPECT_EQ(failure.code, ErrorCode::not_a_directory) << failure.message;
}

TEST_P(FileRootBoth, ComponentsThatCouldClimbOrAreReservedAreRefused) {
  fs::create_directory(root_ / "sub");
  write(root_ / "sub" / ".x.keel-part", "an upload in progress");
  FileRoot files = make_root();
  const std::vector<PathComponents> refused = {
      {".."},
      {"..", "outside", "secret"},
      {"sub", ".."},
      {""},
      {"."},
      {"sub", "."},
      {"..", "root"},
      {"sub/..", "..", "outside"},
      {std::string("a\0b", 3)},
      {"sub", ".x.keel-part"},
  };
  for (const PathComponents& path : refused) {
    Codes codes = codes_for(files, path);
    EXPECT_EQ(codes.open, ErrorCode::not_allowed) << shown_path(path);
    EXPECT_EQ(codes.stat, ErrorCode::not_allowed) << shown_path(path);
    EXPECT_EQ(codes.list, ErrorCode::not_allowed) << shown_path(path);
    FileRoot::Upload upload;
    Failure failure;
    EXPECT_FALSE(files.begin_upload(path, 1, false, true, upload, failure)) << shown_path(path);
    EXPECT_EQ(failure.code, ErrorCode::not_allowed) << shown_path(path);
  }
  EXPECT_EQ(read(root_ / "sub" / ".x.keel-part"), "an upload in progress");
}

TEST_P(FileRootBoth, ASymlinkToEtcIsRefusedAndListedAsOther) {
  fs::create_symlink("/etc", root_ / "etc");
  fs::create_symlink("/etc/passwd", root_ / "passwd");
  FileRoot files = make_root();
  for (const PathComponents& path : {PathComponents{"etc", "passwd"}, PathComponents{"etc"},
                                     PathComponents{"passwd"}, PathComponents{"etc", "nope"}}) {
    Codes codes = codes_for(files, path);
    EXPECT_EQ(codes.open, ErrorCode::not_allowed) << shown_path(path);
    EXPECT_EQ(codes.stat, ErrorCode::not_allowed) << shown_path(path);
    EXPECT_EQ(codes.list, ErrorCode::not_allowed) << shown_path(path);
  }
  // The listing says nothing about what is outside: no size, not even the target's kind.
  std::vector<Entry> entries;
  bool truncated = false;
  Failure failure;
  ASSERT_TRUE(files.list({}, 10, entries, truncated, failure)) << failure.message;
  ASSERT_EQ(entries.size(), 2u);
  for (const Entry& entry : entries) {
    EXPECT_EQ(entry.kind, Kind::other) << entry.name;
    EXPECT_EQ(entry.size, 0u) << entry.name;
  }
}

TEST_P(FileRootBoth, ASymlinkedDirectoryPointingOutIsRefusedAsAnIntermediate) {
  fs::create_symlink("../outside", root_ / "out");
  fs::create_directory(root_ / "sub");
  fs::create_symlink("../../outside", root_ / "sub" / "out");
  FileRoot files = make_root();
  for (const PathComponents& path :
       {PathComponents{"out", "secret"}, PathComponents{"sub", "out", "secret"}}) {
    Codes codes = codes_for(files, path);
    EXPECT_EQ(codes.open, ErrorCode::not_allowed) << shown_path(path);
    EXPECT_EQ(codes.stat, ErrorCode::not_allowed) << shown_path(path);
    EXPECT_EQ(codes.list, ErrorCode::not_allowed) << shown_path(path);
  }
  for (const PathComponents& path : {PathComponents{"out", "new"}, PathComponents{"out", "secret"},
                                     PathComponents{"sub", "out", "new"}}) {
    FileRoot::Upload upload;
    Failure failure;
    EXPECT_FALSE(files.begin_upload(path, 1, false, true, upload, failure)) << shown_path(path);
    EXPECT_EQ(failure.code, ErrorCode::not_allowed) << shown_path(path) << ": " << failure.message;
  }
  std::vector<std::string> outside;
  for (const auto& entry : fs::directory_iterator(outside_)) {
    outside.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(outside, std::vector<std::string>{"secret"});
  EXPECT_EQ(read(outside_ / "secret"), "outside the root");
}

using FileRootSetUp = FileTreeTest;

TEST_F(FileRootSetUp, NamesTheDirectoryItCannotServe) {
  write(root_ / "file", "x");
  for (const auto& [dir, text] : {std::pair{root_ / "nope", "No such file or directory"},
                                  std::pair{root_ / "file", "Not a directory"}}) {
    try {
      FileRoot files(dir.string());
      ADD_FAILURE() << dir << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "files root " + dir.string() + ": " + text);
    }
  }
}

// This kernel (6.x) has openat2: automatic must pick it, and the tests above ran both ways.
TEST_F(FileRootSetUp, ChoosesOpenat2WhenTheKernelHasIt) {
  EXPECT_EQ(FileRoot(root_.string()).resolution(), Resolution::openat2);
  EXPECT_EQ(FileRoot(root_.string(), Resolution::strict_walk).resolution(),
            Resolution::strict_walk);
}

// Links inside the root, and where each resolution takes them.
class FileRootSymlinks : public FileTreeTest {
 protected:
  void SetUp() override {
    FileTreeTest::SetUp();
    fs::create_directory(root_ / "sub");
    write(root_ / "sub" / "file", "inside");
    write(root_ / "top", "top");
    fs::create_symlink("sub/file", root_ / "link");
    fs::create_symlink("sub", root_ / "sublink");
    fs::create_symlink("../top", root_ / "sub" / "up");
    fs::create_symlink(root_ / "top", root_ / "absolute");  // inside, but absolute
    fs::create_symlink("loop", root_ / "loop");
  }
  const std::vector<PathComponents> inside_ = {{"link"}, {"sublink", "file"}, {"sub", "up"}};
};

TEST_F(FileRootSymlinks, Openat2FollowsLinksThatStayInside) {
  FileRoot files(root_.string(), Resolution::openat2);
  for (const PathComponents& path : inside_) {
    FileRoot::OpenedFile opened;
    Failure failure;
    ASSERT_TRUE(files.open_file(path, opened, failure)) << shown_path(path) << failure.message;
    EXPECT_EQ(read_fd(opened.fd.get()), path.back() == "up" ? "top" : "inside");
  }
  Entry entry;
  Failure failure;
  ASSERT_TRUE(files.stat({"sublink"}, entry, failure)) << failure.message;
  EXPECT_EQ(entry.kind, Kind::directory);
  std::vector<Entry> entries;
  bool truncated = false;
  ASSERT_TRUE(files.list({"sublink"}, 10, entries, truncated, failure)) << failure.message;
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].name, "up");  // followed from the root: "../top" is inside
  EXPECT_EQ(entries[1].kind, Kind::file);
  EXPECT_EQ(entries[1].size, 3u);
  ASSERT_TRUE(files.list({}, 10, entries, truncated, failure)) << failure.message;
  std::vector<std::pair<std::string, Kind>> kinds;
  for (const Entry& e : entries) kinds.emplace_back(e.name, e.kind);
  EXPECT_EQ(kinds, (std::vector<std::pair<std::string, Kind>>{{"absolute", Kind::other},
                                                              {"link", Kind::file},
                                                              {"loop", Kind::other},
                                                              {"sub", Kind::directory},
                                                              {"sublink", Kind::directory},
                                                              {"top", Kind::file}}));
}

TEST_F(FileRootSymlinks, Openat2RefusesAbsoluteLinksLoopsAndLinksOutWithAReason) {
  fs::create_symlink("../outside/secret", root_ / "out");
  FileRoot files(root_.string(), Resolution::openat2);
  FileRoot::OpenedFile opened;
  Failure failure;
  EXPECT_FALSE(files.open_file({"out"}, opened, failure));
  EXPECT_EQ(failure.code, ErrorCode::not_allowed);
  EXPECT_EQ(failure.message, "out leads outside the served root");
  // RESOLVE_BENEATH refuses every absolute link, even one naming a place inside the root.
  EXPECT_FALSE(files.open_file({"absolute"}, opened, failure));
  EXPECT_EQ(failure.code, ErrorCode::not_allowed);
  EXPECT_FALSE(files.open_file({"loop"}, opened, failure));
  EXPECT_EQ(failure.code, ErrorCode::not_allowed) << failure.message;
  EXPECT_EQ(failure.message.find(root_.string()), std::string::npos);  // no server paths
}

TEST_F(FileRootSymlinks, TheStrictWalkRefusesEverySymlinkEvenInside) {
  FileRoot files(root_.string(), Resolution::strict_walk);
  for (const PathComponents& path : inside_) {
    FileRoot::OpenedFile opened;
    Failure failure;
    EXPECT_FALSE(files.open_file(path, opened, failure)) << shown_path(path);
    EXPECT_EQ(failure.code, ErrorCode::not_allowed) << shown_path(path);
    EXPECT_NE(failure.message.find("symlink"), std::string::npos) << failure.message;
    Entry entry;
    EXPECT_FALSE(files.stat(path, entry, failure)) << shown_path(path);
    EXPECT_EQ(failure.code, ErrorCode::not_allowed) << shown_path(path);
  }
  std::vector<Entry> entries;
  bool truncated = false;
  Failure failure;
  EXPECT_FALSE(files.list({"sublink"}, 10, entries, truncated, failure));
  EXPECT_EQ(failure.code, ErrorCode::not_allowed) << failure.message;
  ASSERT_TRUE(files.list({}, 10, entries, truncated, failure)) << failure.message;
  for (const Entry& entry : entries) {
    Kind expected = entry.name == "sub"   ? Kind::directory
                    : entry.name == "top" ? Kind::file
                                          : Kind::other;
    EXPECT_EQ(entry.kind, expected) << entry.name;
  }
  FileRoot::Upload upload;
  EXPECT_FALSE(files.begin_upload({"sublink", "new"}, 1, false, false, upload, failure));
  EXPECT_EQ(failure.code, ErrorCode::not_allowed) << failure.message;
  EXPECT_FALSE(fs::exists(root_ / "sub" / ".new.keel-part"));
  // What is not a symlink still works.
  FileRoot::OpenedFile opened;
  ASSERT_TRUE(files.open_file({"sub", "file"}, opened, failure)) << failure.message;
  EXPECT_EQ(read_fd(opened.fd.get()), "inside");
}

}  // namespace
}  // namespace keel::files
