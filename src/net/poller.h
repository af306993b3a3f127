// Poller: how an EventLoop waits for readiness. EventLoop owns one and is its only user, on the
// loop's thread (see event_loop.h). One kind so far:
// - epoll (epoll_poller.cc): the descriptors' interest lives in the kernel's epoll set.
// Events are reported in epoll's shape, with the tag given to add() in data.ptr.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <memory>

namespace keel {

class Poller {
 public:
  virtual ~Poller() = default;
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

}  // namespace keel
