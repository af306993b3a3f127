// Poller: how an EventLoop waits for readiness. EventLoop owns one and is its only user, on the
// loop's thread (see event_loop.h). Two kinds:
// - epoll (epoll_poller.cc): the descriptors' interest lives in the kernel's epoll set;
// - io_uring (uring_poller.cc): one poll request per watched descriptor on the loop's ring,
//   re-armed after each event it reports (so readiness is level-triggered, as with epoll), all
//   re-arms and changes of a turn submitted with the wait in one io_uring_enter.
// Events are reported in epoll's shape (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP have
// the values poll(2) gives them), with the tag given to add() in data.ptr.
//
// Completion receive (io_uring only, receives() true): receive(fd) keeps a receive request on
// a watched descriptor into the poller's buffer ring, shared by all its descriptors, so a
// descriptor holds no buffer until bytes come. Each completion is reported as an event whose
// events are kReceived and whose data.ptr is a Received: the tag, the bytes (valid until the
// next wait) and the result (bytes, 0 for the peer's FIN, or -errno; -ENOBUFS: the ring ran dry,
// the bytes wait in the socket and the receive goes on at the next wait). A descriptor's
// completions keep their order; after stop_receive() at most one more comes (bytes the kernel
// already took from the socket), after remove() none.
#pragma once

#include <errno.h>
#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>

#include "keel/net/io_backend.h"

namespace keel {

// An event's events when it is a completion receive (no epoll flag uses this bit).
constexpr uint32_t kReceived = 1u << 27;
struct Received {
  void* tag;
  const char* data;
  int result;
};

class Poller {
 public:
  virtual ~Poller() = default;
  virtual IoBackend backend() const noexcept = 0;
  // 0 or an errno. A descriptor already watched is an error (EEXIST), as with epoll.
  virtual int add(int fd, uint32_t events, void* tag) noexcept = 0;
  // 0 or an errno (ENOENT: not watched).
  virtual int modify(int fd, uint32_t events, void* tag) noexcept = 0;
  // 0 or an errno (EBADF, ENOENT: the descriptor is closed or was never watched). After it, no
  // event of this registration is reported, even one the kernel had already produced.
  virtual int remove(int fd) noexcept = 0;
  // Waits for events (at most max) unless block is false; returns how many it wrote to out, or
  // -errno (EINTR: call again).
  virtual int wait(epoll_event* out, int max, bool block) noexcept = 0;

  virtual bool receives() const noexcept { return false; }
  // 0 or an errno (ENOENT: not watched, ENOTSUP: no completion receive). Receiving already: 0.
  virtual int receive(int /*fd*/) noexcept { return ENOTSUP; }
  virtual void stop_receive(int /*fd*/) noexcept {}
};

std::unique_ptr<Poller> make_epoll_poller();
// nullptr with *why set when the kernel or the build refuses io_uring.
std::unique_ptr<Poller> make_uring_poller(std::string* why);

}  // namespace keel
