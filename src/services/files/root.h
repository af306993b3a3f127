// FileRoot: the file system side of the `keel files` service (docs/protocols.md, "keel files").
// Every path a client names is resolved beneath the served root only (openat2 RESOLVE_BENEATH,
// or a stricter walk on old kernels: resolve.h), and an upload is written to ".NAME.keel-part"
// beside its target, locked with flock, then renamed into place, so a reader sees either the old
// file or the whole new one. No sockets here: the service drives it from its event loop, so every
// call is bounded (it never reads file contents, a listing stops at a cap, nothing opened blocks:
// a fifo is opened non-blocking and refused).
// Thread safety: const methods may be called from any thread at once (they share only the root's
// descriptor, and upload locks are per open file, so they hold between threads and processes);
// an Upload or OpenedFile belongs to one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "services/files/errors.h"
#include "services/files/kind.h"
#include "services/files/resolve.h"
#include "services/files/unique_fd.h"

namespace keel::files {

// A path components list, as the protocol's split_path makes it: {"a", "b", "c"} for "a/b/c", {}
// for the root.
using PathComponents = std::vector<std::string>;

// What STAT and LIST report about one name. Symlinks are followed beneath the root.
struct Entry {
  std::string name;  // the last component ("" for the root)
  Kind kind = Kind::other;
  uint64_t size = 0;     // bytes for a file, 0 for anything else
  int64_t mtime_ns = 0;  // nanoseconds since the epoch
};

class FileRoot {
 public:
  // Opens dir as the served root. Throws keel::Error naming it, e.g. "files root /srv/x: Not a
  // directory"; also for Resolution::openat2 on a kernel without it.
  explicit FileRoot(const std::string& dir, Resolution resolution = Resolution::automatic);

  FileRoot(const FileRoot&) = delete;
  FileRoot& operator=(const FileRoot&) = delete;

  // The directory as given to the constructor.
  const std::string& path() const noexcept { return path_; }
  // openat2 or strict_walk: what automatic chose.
  Resolution resolution() const noexcept { return resolution_; }
  // For a fork that closed the descriptors it inherited: lets go of the root's descriptor
  // without closing it, as its number may name another file there by now. Only destroying the
  // object is left to do afterwards.
  void forget_descriptor() noexcept { root_fd_.release(); }

  // A regular file opened for reading (O_RDONLY | O_CLOEXEC, blocking), with its fstat.
  struct OpenedFile {
    UniqueFd fd;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t device = 0;
    uint64_t inode = 0;
  };
  // not_a_file for a directory or other; not_found, not_allowed, io as for every call.
  bool open_file(const PathComponents& path, OpenedFile& out, Failure& failure) const;

  bool stat(const PathComponents& path, Entry& out, Failure& failure) const;

  // The directory's entries sorted by name, without ".", ".." and part files. At most max_entries:
  // when there are more, truncated is set, and which ones are kept is the directory's own order
  // (reading all of a huge directory to pick the first names would be unbounded). A symlink that
  // cannot be followed beneath the root is listed as other. not_a_directory for a file.
  bool list(const PathComponents& path, size_t max_entries, std::vector<Entry>& out,
            bool& truncated, Failure& failure) const;

  // An upload in progress: its part file, open and locked. The destructor only closes (and so
  // unlocks) it, leaving the part file for a later resume; commit_upload or discard_upload end it
  // otherwise. Write the bytes at offsets from held on with pwrite(part_fd.get(), ...).
  struct Upload {
    UniqueFd dir_fd;    // the target's directory
    UniqueFd part_fd;   // ".NAME.keel-part" in it, O_RDWR, flock(LOCK_EX) held
    std::string name;   // NAME, the target's last component
    std::string shown;  // the path as the client named it, for messages
    uint64_t held = 0;  // bytes already in the part file (a resumed upload), <= size

    bool active() const noexcept { return part_fd.valid(); }
  };
  // Starts an upload of size bytes to path: the parent directory exists (else not_found), the
  // target is not a directory or other (not_a_file), it does not exist unless replace (exists),
  // and no other upload of it is in progress (busy). With resume the part file's bytes are kept
  // when there are at most size of them, else it is emptied. A symlink named NAME is replaced
  // itself, never written through.
  bool begin_upload(const PathComponents& path, uint64_t size, bool resume, bool replace,
                    Upload& out, Failure& failure) const;
  // Makes the part file the target: fsync it, rename it to NAME (without replace, only if NAME
  // still does not exist: exists, and the part file removed, when another writer got there
  // first), fsync the directory. The upload is over afterwards in every case; after an io failure
  // before the rename the part file stays for a resume. Blocks for the two fsyncs.
  bool commit_upload(Upload& upload, bool replace, Failure& failure) const;
  // Removes the part file (when it is still the one the upload holds) and ends the upload.
  void discard_upload(Upload& upload) const;

 private:
  std::string path_;
  UniqueFd root_fd_;
  Resolution resolution_;
};

}  // namespace keel::files
