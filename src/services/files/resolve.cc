#include "services/files/resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "keel/error.h"
#include "services/files/protocol.h"
#include "services/files/unique_fd.h"

namespace keel::files {
namespace {

// openat2 answers EAGAIN when a rename elsewhere raced its ".." handling (which a symlink inside
// the root may use); the kernel asks the caller to retry. A few tries keep the call bounded.
constexpr int kOpenat2Attempts = 4;

long call_openat2(int dir_fd, const char* path, int flags, mode_t mode) noexcept {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  // openat2 refuses a mode without O_CREAT or O_TMPFILE (EINVAL), unlike openat.
  how.mode = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return ::syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
}

int openat2_beneath(int root_fd, std::span<const std::string> path, int flags, mode_t mode) {
  std::string joined = path.empty() ? std::string(".") : shown_path(path);
  for (int attempt = 1;; ++attempt) {
    long fd = call_openat2(root_fd, joined.c_str(), flags, mode);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != EAGAIN || attempt == kOpenat2Attempts) return -errno;
  }
}

// An open of name in dir_fd failed with err under O_NOFOLLOW: ENOTDIR (with O_DIRECTORY) or
// ELOOP when name is a symlink. Tells the two apart so a refused symlink always reads ELOOP.
// Looking again is racy, but only the error's wording depends on it, never what is opened.
int refine_nofollow_error(int dir_fd, const std::string& name, int err) noexcept {
  struct stat st;
  if ((err == ENOTDIR || err == ELOOP) &&
      ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    return ELOOP;
  }
  return err;
}

// The walk for kernels without openat2. Components are checked plain names (no ".."), and no
// symlink is followed anywhere, so every step stays beneath root_fd: nothing can lead out.
int strict_walk_beneath(int root_fd, std::span<const std::string> path, int flags, mode_t mode) {
  if (path.empty()) {
    int fd = ::openat(root_fd, ".", flags, mode);
    return fd >= 0 ? fd : -errno;
  }
  UniqueFd dir;  // the directory reached so far; the root while not valid
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    int at = dir.valid() ? dir.get() : root_fd;
    int fd = ::openat(at, path[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -refine_nofollow_error(at, path[i], errno);
    dir.reset(fd);
  }
  int at = dir.valid() ? dir.get() : root_fd;
  const std::string& last = path.back();
  UniqueFd file(::openat(at, last.c_str(), flags | O_NOFOLLOW, mode));
  if (!file.valid()) return -refine_nofollow_error(at, last, errno);
  if ((flags & O_PATH) != 0) {
    // O_PATH | O_NOFOLLOW opens a symlink itself rather than failing: refuse it here.
    struct stat st;
    if (::fstat(file.get(), &st) != 0) return -errno;
    if (S_ISLNK(st.st_mode)) return -ELOOP;
  }
  return file.release();
}

}  // namespace

const char* to_string(Resolution resolution) noexcept {
  switch (resolution) {
    case Resolution::automatic: return "automatic";
    case Resolution::openat2: return "openat2";
    case Resolution::strict_walk: return "strict_walk";
  }
  return "?";
}

bool kernel_has_openat2(int dir_fd) noexcept {
  long fd = call_openat2(dir_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd >= 0) {
    ::close(static_cast<int>(fd));
    return true;
  }
  return errno != ENOSYS;
}

Failure resolution_failure(int err, const std::string& shown, Resolution resolution) {
  switch (err) {
    case ENOENT:
    case ENOTDIR: return {ErrorCode::not_found, shown + ": not found"};
    case EXDEV: return {ErrorCode::not_allowed, shown + " leads outside the served root"};
    case ELOOP:
      if (resolution == Resolution::strict_walk) {
        return {ErrorCode::not_allowed, shown +
                                            " passes a symlink, which this server does not "
                                            "follow (its kernel has no openat2)"};
      }
      return {ErrorCode::not_allowed, shown + ": too many levels of symbolic links"};
    case EACCES:
    case EPERM: return {ErrorCode::not_allowed, shown + ": permission denied"};
    case ENAMETOOLONG: return {ErrorCode::not_allowed, shown + ": name too long"};
    default: return {ErrorCode::io, shown + ": " + errno_text(err)};
  }
}

bool check_components(const std::vector<std::string>& path, Failure& failure) {
  for (const std::string& component : path) {
    if (component.empty() || component == "." || component == ".." ||
        component.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
      failure = {ErrorCode::not_allowed,
                 "a path component is empty, \".\", \"..\", or holds '/' "
                 "or NUL"};
      return false;
    }
  }
  if (!path.empty() && is_reserved_name(path.back())) {
    failure = {ErrorCode::not_allowed, shown_path(path) + ": the name is reserved for uploads"};
    return false;
  }
  return true;
}

std::string shown_path(std::span<const std::string> path) {
  if (path.empty()) return ".";
  std::string shown;
  for (const std::string& component : path) {
    if (!shown.empty()) shown += '/';
    shown += component;
  }
  return shown;
}

int open_beneath(int root_fd, Resolution resolution, std::span<const std::string> path, int flags,
                 mode_t mode) {
  if (resolution != Resolution::strict_walk) {
    int fd = openat2_beneath(root_fd, path, flags, mode);
    if (fd != -ENOSYS) return fd;
  }
  return strict_walk_beneath(root_fd, path, flags, mode);
}

}  // namespace keel::files
