// Path resolution beneath a served root: the one place a client's path becomes a descriptor.
// FileRoot (root.h) is its only user; the pieces are separate so each can be read on one screen.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "services/files/errors.h"

namespace keel::files {

// How a path is resolved beneath the root.
enum class Resolution : uint8_t {
  automatic,  // openat2 when the kernel has it (Linux 5.6+), else strict_walk
  // openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): symlinks are followed while they stay
  // beneath the root; one that leaves it (or is absolute) is refused with EXDEV.
  openat2,
  // One openat(O_NOFOLLOW) per component, for kernels without openat2: stricter, as every
  // symlink is refused (ELOOP), including one that would stay beneath the root.
  strict_walk,
};

const char* to_string(Resolution resolution) noexcept;

// The kernel's answer to openat2 on dir_fd: true unless it has no such system call (ENOSYS).
bool kernel_has_openat2(int dir_fd) noexcept;

// Defence in depth behind the protocol's split_path: every component must be a plain name (not
// empty, ".", "..", and without '/' or NUL) and the last must not be a reserved part-file name.
// Says why not (not_allowed) in failure.
bool check_components(const std::vector<std::string>& path, Failure& failure);

// "a/b/c" for messages: the path as the client named it, "." for the root. Never the root's own
// location on the server.
std::string shown_path(std::span<const std::string> path);

// Opens path (checked components; empty: the root itself) beneath root_fd with openat(2)'s flags
// and mode, the last component included. Returns the descriptor, or -errno: EXDEV for a path that
// leaves the root, ELOOP for a symlink strict_walk refuses. Never blocks beyond what flags allow.
int open_beneath(int root_fd, Resolution resolution, std::span<const std::string> path, int flags,
                 mode_t mode = 0);

// The client's view of an errno from open_beneath or a call on what it opened: not_found
// (ENOENT, ENOTDIR: callers that know better word ENOTDIR themselves), not_allowed (EXDEV: leads
// outside the root, ELOOP, EACCES, EPERM, ENAMETOOLONG), else io with the errno text.
Failure resolution_failure(int err, const std::string& shown, Resolution resolution);

}  // namespace keel::files
