// FileQueue: the output of a connection that lies beyond its output buffer while a file region
// is queued (Server::send_file). Each region carries the bytes that were sent after it, so order
// is kept: [output buffer] [region 1] [bytes after 1] [region 2] ... A connection only has a
// FileQueue while it sends a file: the plain path pays a null pointer test.
// Thread safety: not thread-safe; its connection's owner serialises access.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "keel/net/buffer.h"
#include "keel/net/file_region.h"

namespace keel {

class FileQueue {
 public:
  // At most this much of a file goes out per write turn of a connection, so a client fetching
  // a huge file shares its loop (or core) with everyone else.
  static constexpr size_t kSliceBytes = 1 << 20;
  // Through a stream the slice is read into the output buffer: this bounds that memory.
  static constexpr size_t kStreamSliceBytes = 64 * 1024;

  bool empty() const noexcept { return items_.empty(); }
  void push(FileRegion region) { items_.push_back({std::move(region), {}}); }
  // Queues bytes behind the last region; false (nothing taken) when no region is queued.
  bool append_after(std::string_view bytes) {
    if (items_.empty()) return false;
    items_.back().after.append(bytes);
    after_bytes_ += bytes.size();
    return true;
  }
  // Memory held by bytes queued behind regions (the regions themselves hold none).
  size_t after_bytes() const noexcept { return after_bytes_; }
  // File bytes not sent yet.
  uint64_t file_bytes() const noexcept;

  struct Progress {
    size_t taken = 0;     // file bytes that left the region
    bool sent = false;    // ... straight to the socket (sendfile), not into output
    int error = 0;        // errno of a failed call (EAGAIN: the socket is full)
    bool shrank = false;  // the file ended before the region did
  };
  // One step at the front: with the front region finished, moves its after-bytes to output and
  // drops it. Otherwise plain (no stream) sends a slice with sendfile(2) to socket_fd; with a
  // stream, reads a slice into output for the caller to write. Call only with output empty.
  Progress advance(int socket_fd, bool plain, Buffer& output);

 private:
  struct Item {
    FileRegion region;
    std::string after;
  };
  std::deque<Item> items_;
  size_t after_bytes_ = 0;
};

}  // namespace keel
