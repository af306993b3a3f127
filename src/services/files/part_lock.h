// The lock that makes an upload's part file its own (root.h, FileRoot::begin_upload).
//
// An upload of NAME owns ".NAME.keel-part" while it holds flock(LOCK_EX) on it, and only an owner
// renames (commit) or unlinks (discard) that name, and only while it holds the lock. Open and lock
// are two steps, so B may open the part file just before A, its owner, commits it: B then locks
// what is by now NAME (A's rename took the inode along, A's close released the lock), and writing
// to it would corrupt the committed file. So once locked, B checks that the part name still
// refers to the inode it locked. It does only if no owner moved the name between B's open and B's
// lock, and as moving it takes the lock that B now holds, nobody can move it until B is done. If
// the check fails, B opens the name again: a fresh part file (or a third upload's, then busy).
// flock locks belong to the open file, so this holds between threads and processes alike.
#pragma once

#include <functional>
#include <string>

#include "services/files/unique_fd.h"

namespace keel::files {

// Opens (creating, mode 0644, O_RDWR | O_NOFOLLOW | O_CLOEXEC) name in dir_fd and locks it as
// above. Returns 0 with the descriptor in out, or an errno: EWOULDBLOCK when another upload holds
// it (or the name keeps changing under us), else what open or flock said. between_open_and_lock
// is for tests: it runs once, where a racing commit would have to.
int lock_part_file(int dir_fd, const std::string& name, UniqueFd& out,
                   const std::function<void()>& between_open_and_lock = {});

// Whether name in dir_fd is (still) the file open as fd.
bool names_open_file(int dir_fd, const std::string& name, int fd) noexcept;

}  // namespace keel::files
