// FileRegion: part of an open file that a connection sends as it is, after whatever was queued
// before it and before whatever is queued after it. On a plain socket the kernel moves the bytes
// (sendfile(2): no copy through user space); through a stream (TLS) they are read in slices
// and written like any other output.
// Thread safety: an OpenFile is immutable and may be shared by any number of threads; the
// descriptor is closed when the last region (or other owner) lets go of it.
#pragma once

#include <cstdint>
#include <memory>

namespace keel {

class OpenFile {
 public:
  // Takes ownership of fd, a file open for reading (pread and sendfile use explicit offsets,
  // so one OpenFile serves any number of regions at once).
  explicit OpenFile(int fd) noexcept : fd_(fd) {}
  ~OpenFile();
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

struct FileRegion {
  std::shared_ptr<const OpenFile> file;
  uint64_t offset = 0;
  uint64_t length = 0;
};

}  // namespace keel
