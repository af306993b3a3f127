#include "services/files/part_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

namespace keel::files {
namespace {

// Each failed check means an upload committed or discarded this name between our open and lock;
// a name that keeps changing under us is as good as busy.
constexpr int kLockAttempts = 4;

}  // namespace

int lock_part_file(int dir_fd, const std::string& name, UniqueFd& out,
                   const std::function<void()>& between_open_and_lock) {
  out.reset();
  for (int attempt = 1; attempt <= kLockAttempts; ++attempt) {
    // O_NOFOLLOW: a symlink planted under the part name is refused (ELOOP), never written through.
    UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd.valid()) return errno;
    if (attempt == 1 && between_open_and_lock) between_open_and_lock();
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return errno;
    if (names_open_file(dir_fd, name, fd.get())) {
      out = std::move(fd);
      return 0;
    }
  }
  return EWOULDBLOCK;
}

bool names_open_file(int dir_fd, const std::string& name, int fd) noexcept {
  struct stat named, opened;
  return ::fstatat(dir_fd, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
         ::fstat(fd, &opened) == 0 && named.st_dev == opened.st_dev &&
         named.st_ino == opened.st_ino;
}

}  // namespace keel::files
