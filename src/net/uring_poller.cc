// The io_uring Poller: one IORING_OP_POLL_ADD per watched descriptor. A poll request reports
// once; the loop arms it again at its next wait, where the kernel checks readiness at once, so
// a descriptor still ready is reported again: level-triggered, like the epoll set. Changes and
// re-arms of a turn go to the kernel with the wait, in one io_uring_enter.
//
// A request's user_data is (generation << 32 | fd). Every add, change and removal gives the
// descriptor a new generation, so a completion of an older request (already produced, or racing
// its cancellation) is recognised and dropped: after remove() nothing of that registration
// reaches its handler.
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "keel/error.h"
#include "poller.h"

namespace keel {
namespace {

constexpr unsigned kEntries = 1024;
// user_data of requests whose completion says nothing (the removals).
constexpr uint64_t kQuiet = 0;

int setup(io_uring* ring) {
  io_uring_params params{};
  // Task work runs when we enter the kernel anyway, instead of interrupting the loop thread.
  params.flags = IORING_SETUP_COOP_TASKRUN;
  int rc = io_uring_queue_init_params(kEntries, ring, &params);
  if (rc == -EINVAL) {  // a kernel before 5.19
    params = {};
    rc = io_uring_queue_init_params(kEntries, ring, &params);
  }
  if (rc < 0) return -rc;
  if (!(params.features & IORING_FEAT_NODROP)) {  // before 5.5: completions could be lost
    io_uring_queue_exit(ring);
    return ENOSYS;
  }
  // A fork (the processes model's spawner) must not keep the ring's memory mapped: the mapping
  // would keep the ring, and every descriptor its requests hold, alive in the child.
  io_uring_ring_dontfork(ring);
  return 0;
}

class UringPoller final : public Poller {
 public:
  UringPoller() = default;
  ~UringPoller() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }
  // 0 or the errno of the ring's setup.
  int init() noexcept {
    int err = setup(&ring_);
    ready_ = err == 0;
    return err;
  }

  IoBackend backend() const noexcept override { return IoBackend::uring; }

  int add(int fd, uint32_t events, void* tag) noexcept override {
    if (fd < 0) return EBADF;
    if (static_cast<size_t>(fd) >= watches_.size()) watches_.resize(static_cast<size_t>(fd) + 1);
    Watch& w = watches_[static_cast<size_t>(fd)];
    // Still marked as watched: the descriptor was closed without remove() and its number
    // reused (epoll drops a closed file by itself). The old request goes; this one replaces it.
    if (w.watched) cancel(fd, w);
    w.tag = tag;
    w.events = events;
    w.watched = true;
    arm(fd, w);
    return 0;
  }

  int modify(int fd, uint32_t events, void* tag) noexcept override {
    Watch* w = find(fd);
    if (!w) return ENOENT;
    w->tag = tag;
    if (w->events == events) return 0;
    w->events = events;
    // An armed request waits for the old events: replace it. One that reported this turn is
    // armed again at the next wait with the new ones.
    if (w->armed) {
      cancel(fd, *w);
      arm(fd, *w);
    }
    return 0;
  }

  int remove(int fd) noexcept override {
    Watch* w = find(fd);
    if (!w) return ENOENT;
    const bool armed = w->armed;
    cancel(fd, *w);
    w->watched = false;
    w->tag = nullptr;
    // The poll request holds the file: the caller is about to close it and expects the close to
    // take effect (a FIN sent, a port free), even when no wait follows, as after run().
    if (armed) io_uring_submit(&ring_);
    return 0;
  }

  int wait(epoll_event* out, int max, bool block) noexcept override {
    for (int fd : rearm_) {
      Watch& w = watches_[static_cast<size_t>(fd)];
      if (w.watched && !w.armed) arm(fd, w);
    }
    rearm_.clear();
    int rc = block ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit(&ring_);
    if (rc < 0 && rc != -EBUSY) return rc;  // EBUSY: completions first, they are reaped below
    int n = 0;
    unsigned seen = 0;
    unsigned head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (n == max) break;
      ++seen;
      const uint64_t data = cqe->user_data;
      if (data == kQuiet) continue;
      const size_t fd = static_cast<uint32_t>(data);
      if (fd >= watches_.size()) continue;
      Watch& w = watches_[fd];
      if (!w.watched || !w.armed || w.generation != static_cast<uint32_t>(data >> 32)) continue;
      w.armed = false;
      rearm_.push_back(static_cast<int>(fd));
      out[n].events = cqe->res >= 0 ? static_cast<uint32_t>(cqe->res) : EPOLLERR;
      out[n].data.ptr = w.tag;
      ++n;
    }
    io_uring_cq_advance(&ring_, seen);
    return n;
  }

 private:
  struct Watch {
    void* tag = nullptr;
    uint32_t events = 0;
    uint32_t generation : 30 = 0;
    uint32_t watched : 1 = 0;
    uint32_t armed : 1 = 0;  // a poll request is in the kernel (or queued for it)
  };

  Watch* find(int fd) noexcept {
    if (fd < 0 || static_cast<size_t>(fd) >= watches_.size()) return nullptr;
    Watch& w = watches_[static_cast<size_t>(fd)];
    return w.watched ? &w : nullptr;
  }

  static uint64_t user_data(int fd, const Watch& w) noexcept {
    return uint64_t{w.generation} << 32 | static_cast<uint32_t>(fd);
  }

  // Never nullptr: a full submission queue is handed to the kernel first.
  io_uring_sqe* next_sqe() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    if (!sqe) {
      std::fprintf(stderr, "keel: io_uring: no submission entry after a submit\n");
      std::abort();
    }
    return sqe;
  }

  void arm(int fd, Watch& w) noexcept {
    // Generation 0 is never used, so no request's user_data is kQuiet.
    w.generation = w.generation + 1;
    if (w.generation == 0) w.generation = 1;
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_poll_add(sqe, fd, w.events);
    io_uring_sqe_set_data64(sqe, user_data(fd, w));
    w.armed = true;
  }

  void cancel(int fd, Watch& w) noexcept {
    if (w.armed) {
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_poll_remove(sqe, user_data(fd, w));
      io_uring_sqe_set_data64(sqe, kQuiet);
      w.armed = false;
    }
    ++w.generation;  // whatever the old request still reports is dropped
  }

  io_uring ring_{};
  bool ready_ = false;
  std::vector<Watch> watches_;  // by descriptor
  std::vector<int> rearm_;      // reported last wait; armed again at the next
};

std::string refusal(int err) {
  if (err == ENOSYS) return "this kernel has no io_uring (Linux 5.5 or later is needed)";
  if (err == EPERM)
    return "io_uring is not permitted here (kernel.io_uring_disabled, or a seccomp filter)";
  return std::string("io_uring_setup: ") + ::strerror(err);
}

}  // namespace

std::unique_ptr<Poller> make_uring_poller(std::string* why) {
  auto poller = std::make_unique<UringPoller>();
  if (int err = poller->init()) {
    if (why) *why = refusal(err);
    return nullptr;
  }
  return poller;
}

bool io_uring_available(std::string* why) {
  io_uring ring;
  if (int err = setup(&ring)) {
    if (why) *why = refusal(err);
    return false;
  }
  io_uring_queue_exit(&ring);
  return true;
}

}  // namespace keel
