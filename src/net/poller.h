// Poller: how an EventLoop waits for readiness. EventLoop owns one and is its only user, on the
// loop's thread (see event_loop.h). Two kinds:
// - epoll (epoll_poller.cc): the descriptors' interest lives in the kernel's epoll set;
// - io_uring (uring_poller.cc): one poll request per watched descriptor on the loop's ring,
//   re-armed after each event it reports (so readiness is level-triggered, as with epoll), all
//   re-arms and changes of a turn submitted with the wait in one io_uring_enter.
// Events are reported in epoll's shape (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP have
// the values poll(2) gives them), with the tag given to add() in data.ptr.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>

#include "keel/net/io_backend.h"

namespace keel {

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
};

std::unique_ptr<Poller> make_epoll_poller();
// nullptr with *why set when the kernel or the build refuses io_uring.
std::unique_ptr<Poller> make_uring_poller(std::string* why);

}  // namespace keel
