#include "file_queue.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>

#include "keel/net/tcp_connection.h"

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

Flushed flush_output(int fd, Stream* stream, Buffer& output, FileQueue* files) {
  Flushed f;
  size_t file_budget = FileQueue::kSliceBytes;
  for (;;) {
    if (!output.empty()) {
      ssize_t n = write_output(fd, stream, output.peek(), output.readable_bytes());
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          f.state = Flushed::State::blocked;
        } else {
          f.state = Flushed::State::failed;
          f.reason = close_reason_for(errno, stream);
        }
        return f;
      }
      f.sent += static_cast<uint64_t>(n);
      output.consume(static_cast<size_t>(n));
      if (!output.empty()) {
        f.state = Flushed::State::blocked;
        return f;
      }
    }
    if (!files || files->empty()) return f;
    // A slice per turn: EPOLLOUT stays armed, so the rest goes after the loop's other work.
    if (file_budget == 0) {
      f.state = Flushed::State::blocked;
      return f;
    }
    FileQueue::Progress p = files->advance(fd, !stream, output);
    if (p.error == EAGAIN || p.error == EINTR) {
      f.state = Flushed::State::blocked;
      return f;
    }
    if (p.error || p.shrank) {
      f.state = Flushed::State::failed;
      f.reason =
          p.error ? close_reason_for(p.error, stream)
                  : CloseReason{CloseReason::Kind::error, EIO, "the file being sent ended early"};
      return f;
    }
    file_budget -= std::min(file_budget, p.taken);
    if (p.sent) f.sent += p.taken;
  }
}

}  // namespace keel
