// Shared by the FileRoot tests: each test gets its own mkdtemp directory holding "root" (what
// FileRoot serves) and "outside" (a sibling no path may reach), removed afterwards.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "services/files/root.h"

namespace keel::files {

namespace fs = std::filesystem;

class FileTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/keel-files-root-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    root_ = base_ / "root";
    outside_ = base_ / "outside";
    fs::create_directory(root_);
    fs::create_directory(outside_);
    write(outside_ / "secret", "outside the root");
  }
  void TearDown() override { fs::remove_all(base_); }

  static void write(const fs::path& file, std::string_view content) {
    std::ofstream(file, std::ios::binary) << content;
  }
  static std::string read(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  static std::string read_fd(int fd) {
    std::string text;
    char buf[4096];
    for (off_t at = 0;;) {
      ssize_t n = ::pread(fd, buf, sizeof buf, at);
      if (n <= 0) return text;
      text.append(buf, static_cast<size_t>(n));
      at += n;
    }
  }
  static void write_fd(int fd, std::string_view data, off_t at) {
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), at), static_cast<ssize_t>(data.size()));
  }
  static void set_mtime_ns(const fs::path& file, int64_t ns) {
    timespec times[2] = {{0, UTIME_OMIT}, {ns / 1'000'000'000, ns % 1'000'000'000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }

  fs::path base_, root_, outside_;
};

}  // namespace keel::files
