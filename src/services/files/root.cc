#include "services/files/root.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "keel/error.h"
#include "services/files/protocol.h"

namespace keel::files {
namespace {

Kind kind_of(mode_t mode) noexcept {
  if (S_ISREG(mode)) return Kind::file;
  if (S_ISDIR(mode)) return Kind::directory;
  return Kind::other;
}

int64_t mtime_ns_of(const struct stat& st) noexcept {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

Entry entry_of(const struct stat& st, std::string name) {
  Kind kind = kind_of(st.st_mode);
  return {std::move(name), kind, kind == Kind::file ? static_cast<uint64_t>(st.st_size) : 0,
          mtime_ns_of(st)};
}

struct DirCloser {
  void operator()(DIR* dir) const noexcept { ::closedir(dir); }
};

}  // namespace

FileRoot::FileRoot(const std::string& dir, Resolution resolution)
    : path_(dir), resolution_(resolution) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_system_error("files root", dir, errno);
  root_fd_.reset(fd);
  bool has_openat2 = kernel_has_openat2(fd);
  if (resolution_ == Resolution::automatic) {
    resolution_ = has_openat2 ? Resolution::openat2 : Resolution::strict_walk;
  } else if (resolution_ == Resolution::openat2 && !has_openat2) {
    throw Error("files root " + dir + ": openat2: " + errno_text(ENOSYS), ENOSYS);
  }
}

bool FileRoot::open_file(const PathComponents& path, OpenedFile& out, Failure& failure) const {
  out = OpenedFile{};
  if (!check_components(path, failure)) return false;
  // O_NONBLOCK: a fifo must not block the event loop in open (it is refused below anyway).
  int fd =
      open_beneath(root_fd_.get(), resolution_, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (fd == -ENXIO || fd == -ENODEV) {  // a socket, or a device without a driver
      failure = {ErrorCode::not_a_file, shown_path(path) + ": not a file"};
    } else {
      failure = resolution_failure(-fd, shown_path(path), resolution_);
    }
    return false;
  }
  UniqueFd file(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    failure = resolution_failure(errno, shown_path(path), resolution_);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    failure = {
        ErrorCode::not_a_file,
        shown_path(path) + (S_ISDIR(st.st_mode) ? ": is a directory, not a file" : ": not a file")};
    return false;
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    failure = resolution_failure(errno, shown_path(path), resolution_);
    return false;
  }
  out.fd = std::move(file);
  out.size = static_cast<uint64_t>(st.st_size);
  out.mtime_ns = mtime_ns_of(st);
  out.device = st.st_dev;
  out.inode = st.st_ino;
  return true;
}

bool FileRoot::stat(const PathComponents& path, Entry& out, Failure& failure) const {
  if (!check_components(path, failure)) return false;
  // O_PATH: no open side effects and never blocks, whatever the path names.
  int fd = open_beneath(root_fd_.get(), resolution_, path, O_PATH | O_CLOEXEC);
  if (fd < 0) {
    failure = resolution_failure(-fd, shown_path(path), resolution_);
    return false;
  }
  UniqueFd opened(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    failure = resolution_failure(errno, shown_path(path), resolution_);
    return false;
  }
  out = entry_of(st, path.empty() ? std::string() : path.back());
  return true;
}

bool FileRoot::list(const PathComponents& path, size_t max_entries, std::vector<Entry>& out,
                    bool& truncated, Failure& failure) const {
  out.clear();
  truncated = false;
  if (!check_components(path, failure)) return false;
  int fd = open_beneath(root_fd_.get(), resolution_, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    failure = resolution_failure(-fd, shown_path(path), resolution_);
    if (fd == -ENOTDIR) {
      // Either the path itself is not a directory or one before it is not: look again to say.
      Entry entry;
      Failure ignored;
      if (stat(path, entry, ignored) && entry.kind != Kind::directory) {
        failure = {ErrorCode::not_a_directory, shown_path(path) + ": not a directory"};
      }
    }
    return false;
  }
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(fd));
  if (!dir) {
    failure = resolution_failure(errno, shown_path(path), resolution_);
    ::close(fd);
    return false;
  }
  PathComponents child = path;  // + the entry's name, to follow a symlink from the root
  child.emplace_back();
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno == 0) break;
      failure = resolution_failure(errno, shown_path(path), resolution_);
      out.clear();
      return false;
    }
    std::string_view name = entry->d_name;
    if (name == "." || name == ".." || is_reserved_name(name)) continue;
    if (out.size() == max_entries) {
      truncated = true;
      break;
    }
    struct stat st;
    if (::fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone since
    if (S_ISLNK(st.st_mode) && resolution_ == Resolution::openat2) {
      // Followed from the root, not from this directory, so "../x" that stays inside works.
      // One that cannot be followed keeps its own lstat: it is listed as other.
      child.back() = name;
      int target = open_beneath(root_fd_.get(), resolution_, child, O_PATH | O_CLOEXEC);
      if (target >= 0) {
        UniqueFd opened(target);
        struct stat followed;
        if (::fstat(target, &followed) == 0) st = followed;
      }
    }
    out.push_back(entry_of(st, std::string(name)));
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return true;
}

}  // namespace keel::files
