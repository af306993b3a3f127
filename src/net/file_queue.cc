#include "file_queue.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>

namespace keel {

OpenFile::~OpenFile() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t FileQueue::file_bytes() const noexcept {
  uint64_t n = 0;
  for (const Item& item : items_) n += item.region.length;
  return n;
}

FileQueue::Progress FileQueue::advance(int socket_fd, bool plain, Buffer& output) {
  Item& front = items_.front();
  FileRegion& r = front.region;
  Progress p;
  if (r.length == 0) {
    after_bytes_ -= front.after.size();
    output.append(front.after);
    items_.pop_front();
    return p;
  }
  if (plain) {
    auto offset = static_cast<off_t>(r.offset);
    size_t want = static_cast<size_t>(std::min<uint64_t>(r.length, kSliceBytes));
    ssize_t n = ::sendfile(socket_fd, r.file->fd(), &offset, want);
    if (n < 0) {
      p.error = errno;
      return p;
    }
    if (n == 0) {
      p.shrank = true;
      return p;
    }
    p.taken = static_cast<size_t>(n);
    p.sent = true;
    r.offset += p.taken;
    r.length -= p.taken;
    return p;
  }
  size_t want = static_cast<size_t>(std::min<uint64_t>(r.length, kStreamSliceBytes));
  output.ensure_writable(want);
  ssize_t n = ::pread(r.file->fd(), output.write_ptr(), want, static_cast<off_t>(r.offset));
  if (n < 0) {
    p.error = errno == EAGAIN ? EIO : errno;  // a file never blocks: do not report "socket full"
    return p;
  }
  if (n == 0) {
    p.shrank = true;
    return p;
  }
  p.taken = static_cast<size_t>(n);
  output.commit(p.taken);
  r.offset += p.taken;
  r.length -= p.taken;
  return p;
}

}  // namespace keel
