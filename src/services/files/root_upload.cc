// FileRoot's uploads (root.h): part file, lock (part_lock.h), commit by rename.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <span>

#include "keel/error.h"
#include "services/files/part_lock.h"
#include "services/files/protocol.h"
#include "services/files/root.h"

namespace keel::files {
namespace {

Failure io_failure(const char* operation, const std::string& shown, int err) {
  return {ErrorCode::io, std::string(operation) + " " + shown + ": " + errno_text(err)};
}

// renameat2(RENAME_NOREPLACE) for a file system that lacks it (EINVAL: some network and FUSE
// file systems): link fails with EEXIST as atomically, then the part name goes.
int rename_noreplace(int dir_fd, const std::string& from, const std::string& to) noexcept {
  if (::renameat2(dir_fd, from.c_str(), dir_fd, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL) return -1;
  if (::linkat(dir_fd, from.c_str(), dir_fd, to.c_str(), 0) != 0) return -1;
  ::unlinkat(dir_fd, from.c_str(), 0);
  return 0;
}

}  // namespace

bool FileRoot::begin_upload(const PathComponents& path, uint64_t size, bool resume, bool replace,
                            Upload& out, Failure& failure) const {
  out = Upload{};
  if (!check_components(path, failure)) return false;
  const std::string shown = shown_path(path);
  if (path.empty()) {
    failure = {ErrorCode::not_a_file, "the served root is a directory, not a file"};
    return false;
  }
  std::span<const std::string> parent(path.data(), path.size() - 1);
  int dir_fd = open_beneath(root_fd_.get(), resolution_, parent,
                            O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // O_RDONLY: fsync needs it
  if (dir_fd < 0) {
    failure = resolution_failure(-dir_fd, shown_path(parent), resolution_);
    if (dir_fd == -ENOENT || dir_fd == -ENOTDIR) {
      failure.message = "the directory " + shown_path(parent) + " does not exist";
    }
    return false;
  }
  UniqueFd dir(dir_fd);
  const std::string& name = path.back();

  // Checked before the part file is made, so a refused upload leaves nothing behind. The target
  // may still appear before the commit: RENAME_NOREPLACE settles that race.
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) {
      failure = {ErrorCode::not_a_file, shown + ": is a directory, not a file"};
      return false;
    }
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      failure = {ErrorCode::not_a_file, shown + ": not a file"};
      return false;
    }
    if (!replace) {
      failure = {ErrorCode::exists, shown + " already exists"};
      return false;
    }
  } else if (errno != ENOENT) {
    failure = resolution_failure(errno, shown, resolution_);
    return false;
  }

  const std::string part = part_name(name);
  UniqueFd part_fd;
  if (int err = lock_part_file(dir_fd, part, part_fd); err != 0) {
    if (err == EWOULDBLOCK) {
      failure = {ErrorCode::busy, "another upload of " + shown + " is in progress"};
    } else if (err == ELOOP) {
      failure = {ErrorCode::not_allowed, shown + ": its part file " + part + " is a symlink"};
    } else if (err == ENAMETOOLONG) {
      failure = {ErrorCode::not_allowed, shown + ": name too long for an upload"};
    } else {
      failure = resolution_failure(err, shown, resolution_);
    }
    return false;
  }

  if (::fstat(part_fd.get(), &st) != 0) {
    failure = io_failure("fstat", shown, errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    failure = {ErrorCode::not_allowed, shown + ": its part file " + part + " is not a file"};
    return false;
  }
  uint64_t held = static_cast<uint64_t>(st.st_size);
  if (!resume || held > size) {
    if (::ftruncate(part_fd.get(), 0) != 0) {
      failure = io_failure("truncate", shown, errno);
      return false;
    }
    held = 0;
  }
  out.dir_fd = std::move(dir);
  out.part_fd = std::move(part_fd);
  out.name = name;
  out.shown = shown;
  out.held = held;
  return true;
}

bool FileRoot::commit_upload(Upload& upload, bool replace, Failure& failure) const {
  Upload ending = std::move(upload);  // closed (and unlocked) on every return, after the rename
  if (!ending.active()) {
    failure = {ErrorCode::io, "no upload in progress"};
    return false;
  }
  const std::string part = part_name(ending.name);
  if (::fsync(ending.part_fd.get()) != 0) {
    failure = io_failure("fsync", ending.shown, errno);
    return false;
  }
  int dir_fd = ending.dir_fd.get();
  int renamed = replace ? ::renameat(dir_fd, part.c_str(), dir_fd, ending.name.c_str())
                        : rename_noreplace(dir_fd, part, ending.name);
  if (renamed != 0) {
    int err = errno;
    if (err == EEXIST) {
      // Another writer made NAME since begin_upload: theirs stays, ours goes.
      ::unlinkat(dir_fd, part.c_str(), 0);
      failure = {ErrorCode::exists, ending.shown + " already exists"};
    } else if (err == EISDIR || err == ENOTEMPTY) {
      failure = {ErrorCode::not_a_file, ending.shown + ": is a directory, not a file"};
    } else {
      failure = io_failure("rename", ending.shown, err);
    }
    return false;
  }
  // The rename itself is durable only once the directory is.
  if (::fsync(dir_fd) != 0) {
    failure = io_failure("fsync the directory of", ending.shown, errno);
    return false;
  }
  return true;
}

void FileRoot::discard_upload(Upload& upload) const {
  Upload ending = std::move(upload);
  if (!ending.active()) return;
  const std::string part = part_name(ending.name);
  // Still ours by the locking rule (part_lock.h); checked anyway in case someone outside keel
  // moved it.
  if (names_open_file(ending.dir_fd.get(), part, ending.part_fd.get())) {
    ::unlinkat(ending.dir_fd.get(), part.c_str(), 0);
  }
}

}  // namespace keel::files
