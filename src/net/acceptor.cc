#include "acceptor.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keel/net/tcp_server.h"

namespace keel {
namespace {
int open_reserve() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}
}  // namespace

Acceptor::Acceptor(TcpServer& server, EventLoop& loop, Socket listener)
    : server_(server),
      loop_(loop),
      listener_(std::move(listener)),
      reserve_fd_(open_reserve()),
      ceiling_(descriptor_ceiling(server.options_.fd_headroom)) {
  refill_reserves();
}

Acceptor::~Acceptor() {
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
  for (int fd : serving_reserves_) ::close(fd);
}

void Acceptor::refill_reserves() {
  while (serving_reserves_.size() < server_.options_.reserved_fds) {
    int fd = open_reserve();
    if (fd < 0) return;
    serving_reserves_.push_back(fd);
  }
}

bool Acceptor::accept_with_reserve() {
  while (!serving_reserves_.empty()) {
    ::close(serving_reserves_.back());
    serving_reserves_.pop_back();
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(listener_.fd(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      server_.on_accepted(loop_, Socket(fd),
                          Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), peer_len));
      return true;
    }
    // EMFILE again: another thread took the descriptor first; try the next reserve.
    if (errno != EMFILE && errno != ENFILE) return false;
  }
  return false;
}

void Acceptor::start() {
  loop_.assert_in_loop();
  if (watching_ || !listener_.valid()) return;
  loop_.watch(listener_.fd(), EPOLLIN, this);
  watching_ = true;
}

void Acceptor::stop() {
  loop_.assert_in_loop();
  if (backoff_timer_) loop_.cancel_timer(std::exchange(backoff_timer_, 0));
  if (watching_) loop_.unwatch(listener_.fd());
  watching_ = false;
  listener_.reset();
}

void Acceptor::handle_events(uint32_t) {
  if (serving_reserves_.size() < server_.options_.reserved_fds) refill_reserves();
  // Bounded per wake-up so one busy listener cannot starve the loop's connections.
  for (int i = 0; i < 128; ++i) {
    // The address accept4 reports stays known even when the client has already reset the
    // connection (a load balancer's health check), when getpeername() no longer can.
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(listener_.fd(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= ceiling_) {  // the last descriptors are left to others (the admin endpoint)
      ::close(fd);
      server_.fd_exhaustion_.fetch_add(1, std::memory_order_relaxed);
      if (server_.options_.on_refused) server_.options_.on_refused(Refusal::fd_exhaustion);
      continue;
    }
    if (fd >= 0) {
      server_.on_accepted(loop_, Socket(fd),
                          Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), peer_len));
      continue;
    }
    int err = errno;
    switch (err) {
      case EAGAIN: return;
      case EINTR:
      case ECONNABORTED:  // the client gave up before we accepted; nothing to do
      case EPROTO: server_.accept_errors_.fetch_add(1, std::memory_order_relaxed); continue;
      case EMFILE:
      case ENFILE:
        server_.accept_errors_.fetch_add(1, std::memory_order_relaxed);
        if (accept_with_reserve()) continue;
        server_.fd_exhaustion_.fetch_add(1, std::memory_order_relaxed);
        if (server_.options_.on_refused) server_.options_.on_refused(Refusal::fd_exhaustion);
        if (!shed_one()) {
          back_off();
          return;
        }
        continue;
      default:  // ENOBUFS, ENOMEM, ...: transient resource trouble
        server_.accept_errors_.fetch_add(1, std::memory_order_relaxed);
        back_off();
        return;
    }
  }
}

bool Acceptor::shed_one() {
  if (reserve_fd_ < 0) return false;
  ::close(reserve_fd_);
  reserve_fd_ = -1;
  int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) ::close(fd);
  reserve_fd_ = open_reserve();
  return fd >= 0 && reserve_fd_ >= 0;
}

void Acceptor::back_off() {
  if (!watching_) return;
  loop_.unwatch(listener_.fd());
  watching_ = false;
  backoff_timer_ = loop_.run_after(server_.options_.accept_backoff, [this] {
    backoff_timer_ = 0;
    if (reserve_fd_ < 0) reserve_fd_ = open_reserve();
    start();
  });
}

}  // namespace keel
