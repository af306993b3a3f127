// The epoll Poller: interest lives in the kernel's epoll set (level-triggered).
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "keel/error.h"
#include "poller.h"

namespace keel {
namespace {

class EpollPoller final : public Poller {
 public:
  EpollPoller() : fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (fd_ < 0) throw_system_error("epoll_create1", "", errno);
  }
  ~EpollPoller() override { ::close(fd_); }

  IoBackend backend() const noexcept override { return IoBackend::epoll; }

  int add(int fd, uint32_t events, void* tag) noexcept override {
    return control(EPOLL_CTL_ADD, fd, events, tag);
  }
  int modify(int fd, uint32_t events, void* tag) noexcept override {
    return control(EPOLL_CTL_MOD, fd, events, tag);
  }
  int remove(int fd) noexcept override {
    return ::epoll_ctl(fd_, EPOLL_CTL_DEL, fd, nullptr) == 0 ? 0 : errno;
  }

  int wait(epoll_event* out, int max, bool block) noexcept override {
    int n = ::epoll_wait(fd_, out, max, block ? -1 : 0);
    return n >= 0 ? n : -errno;
  }

 private:
  int control(int op, int fd, uint32_t events, void* tag) noexcept {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = tag;
    return ::epoll_ctl(fd_, op, fd, &ev) == 0 ? 0 : errno;
  }

  const int fd_;
};

}  // namespace

std::unique_ptr<Poller> make_epoll_poller() {
  return std::make_unique<EpollPoller>();
}

}  // namespace keel
