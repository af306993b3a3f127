// The io_uring Poller: one IORING_OP_POLL_ADD per watched descriptor. A poll request reports
// once; the loop arms it again at its next wait, where the kernel checks readiness at once, so
// a descriptor still ready is reported again: level-triggered, like the epoll set. Changes and
// re-arms of a turn go to the kernel with the wait, in one io_uring_enter.
//
// A request's user_data is (generation << 32 | fd). Every add, change and removal gives the
// descriptor a new generation, so a completion of an older request (already produced, or racing
// its cancellation) is recognised and dropped: after remove() nothing of that registration
// reaches its handler.
//
// Completion receive: an IORING_OP_RECV with IOSQE_BUFFER_SELECT from one provided buffer ring
// per poller, armed again after each completion that brought bytes (with the turn's other
// submissions: no extra system call), with IORING_RECVSEND_POLL_FIRST since the socket was just
// emptied. Not multishot: a multishot receive keeps reading into the ring until a cancel reaches
// the kernel, so a connection paused for backpressure still took up to the whole ring (4 MiB
// from one fast sender in one batch, measured); with one request at a time, stop_receive()
// cancels it, and at most the one completion that overtakes the cancel comes. Its user_data is
// kReceiveBit | (receive generation << 32 | fd); that generation changes only when the
// registration goes (remove, or a reused number), so bytes the kernel took from the socket are
// never dropped while the descriptor is watched. A buffer goes back to the ring at the next wait,
// after the handlers have copied what they keep. A request that ends without bytes while the
// descriptor is still receiving (the ring ran dry: ENOBUFS, also reported to the handler; a
// cancel that a new receive() overtook) is armed again at the next wait.
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "poller.h"

namespace keel {
namespace {

constexpr unsigned kEntries = 1024;
// user_data of requests whose completion says nothing (the removals).
constexpr uint64_t kQuiet = 0;
constexpr uint64_t kReceiveBit = uint64_t{1} << 63;
// The provided buffers. One completion fills at most one, so a buffer is as large as the
// readiness path's read (EventLoop::kScratchBytes): with smaller ones (16 KiB was tried) the
// server's reads, and so its echoes and the peer's window updates, come in smaller pieces, and
// a slow reader with a small receive buffer (TimeoutTest.BytesGoingOutCountAsActivity) left a
// full-sized segment stuck behind a window one KiB short, paced by the persist timer. Mapped
// once, touched as used.
constexpr unsigned kBuffers = 128;
constexpr unsigned kBufferBytes = 64 * 1024;
constexpr uint16_t kBufferGroup = 0;

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
    if (buffer_ring_) ::munmap(buffer_ring_, kBuffers * sizeof(io_uring_buf));
    if (buffers_) ::munmap(buffers_, size_t{kBuffers} * kBufferBytes);
  }
  // 0 or the errno of the ring's setup. Without a buffer ring (a kernel before 5.19) the
  // poller works and receives() is false.
  int init() noexcept {
    int err = setup(&ring_);
    ready_ = err == 0;
    if (ready_) setup_buffers();
    return err;
  }

  bool receives() const noexcept override { return buffers_ != nullptr; }

  int receive(int fd) noexcept override {
    if (!buffers_) return ENOTSUP;
    Watch* w = find(fd);
    if (!w) return ENOENT;
    if (w->receiving) return 0;
    w->receiving = true;
    // One still in the kernel (its cancel on the way) ends first, and is armed again then.
    if (!w->receive_armed) arm_receive(fd, *w);
    return 0;
  }

  void stop_receive(int fd) noexcept override {
    Watch* w = find(fd);
    if (!w || !w->receiving) return;
    w->receiving = false;
    // The request in the kernel is cancelled with the next submission; it may still complete
    // with bytes first (one buffer), and is not armed again.
    cancel_receive(fd, *w);
  }

  IoBackend backend() const noexcept override { return IoBackend::uring; }

  int add(int fd, uint32_t events, void* tag) noexcept override {
    if (fd < 0) return EBADF;
    if (static_cast<size_t>(fd) >= watches_.size()) watches_.resize(static_cast<size_t>(fd) + 1);
    Watch& w = watches_[static_cast<size_t>(fd)];
    // Still marked as watched: the descriptor was closed without remove() and its number
    // reused (epoll drops a closed file by itself). The old request goes; this one replaces it.
    if (w.watched) {
      cancel(fd, w);
      drop_receive(fd, w);
    }
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
    const bool armed = w->armed || w->receive_armed;
    cancel(fd, *w);
    drop_receive(fd, *w);
    w->watched = false;
    w->tag = nullptr;
    // A request holds the file: the caller is about to close it and expects the close to take
    // effect (a FIN sent, a port free), even when no wait follows, as after run().
    if (armed) io_uring_submit(&ring_);
    return 0;
  }

  int wait(epoll_event* out, int max, bool block) noexcept override {
    for (int fd : rearm_) {
      Watch& w = watches_[static_cast<size_t>(fd)];
      if (w.watched && !w.armed) arm(fd, w);
    }
    rearm_.clear();
    // The handlers of the last batch are done with its buffers.
    if (!returned_.empty()) give_back_buffers();
    for (int fd : rearm_receive_) {
      Watch& w = watches_[static_cast<size_t>(fd)];
      if (w.watched && w.receiving && !w.receive_armed) arm_receive(fd, w);
    }
    rearm_receive_.clear();
    if (received_.size() < static_cast<size_t>(max)) received_.resize(static_cast<size_t>(max));
    int rc = block ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit(&ring_);
    if (rc < 0 && rc != -EBUSY) return rc;  // EBUSY: completions first, they are reaped below
    int n = 0;
    received_used_ = 0;
    unsigned seen = 0;
    unsigned head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (n == max) break;
      ++seen;
      const uint64_t data = cqe->user_data;
      if (data == kQuiet) continue;
      if (data & kReceiveBit) {
        if (report_received(*cqe, out[n])) ++n;
        continue;
      }
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
  // 16 bytes per descriptor number (docs/architecture.md counts it in an idle connection).
  struct Watch {
    void* tag = nullptr;
    uint32_t events : 16 = 0;  // poll(2) bits: all below 1 << 16
    uint32_t receive_generation : 16 = 0;
    uint32_t generation : 28 = 0;
    uint32_t watched : 1 = 0;
    uint32_t armed : 1 = 0;          // a poll request is in the kernel (or queued for it)
    uint32_t receiving : 1 = 0;      // receive() asked for, stop_receive() not
    uint32_t receive_armed : 1 = 0;  // a receive request is in the kernel (or queued for it)
  };
  static_assert(sizeof(Watch) == 16);

  void setup_buffers() noexcept {
    const size_t ring_bytes = kBuffers * sizeof(io_uring_buf);
    void* ring =
        ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED) return;
    void* bufs = ::mmap(nullptr, size_t{kBuffers} * kBufferBytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bufs == MAP_FAILED) {
      ::munmap(ring, ring_bytes);
      return;
    }
    // As the ring: a forked child keeps none of it.
    ::madvise(ring, ring_bytes, MADV_DONTFORK);
    ::madvise(bufs, size_t{kBuffers} * kBufferBytes, MADV_DONTFORK);
    buffer_ring_ = static_cast<io_uring_buf_ring*>(ring);
    io_uring_buf_ring_init(buffer_ring_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(ring);
    reg.ring_entries = kBuffers;
    reg.bgid = kBufferGroup;
    if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {  // before 5.19: polls only
      ::munmap(ring, ring_bytes);
      ::munmap(bufs, size_t{kBuffers} * kBufferBytes);
      buffer_ring_ = nullptr;
      return;
    }
    buffers_ = static_cast<char*>(bufs);
    returned_.reserve(kBuffers);
    for (unsigned i = 0; i < kBuffers; ++i) returned_.push_back(static_cast<uint16_t>(i));
    give_back_buffers();
  }

  // The buffers in returned_ go (back) to the ring.
  void give_back_buffers() noexcept {
    const int mask = io_uring_buf_ring_mask(kBuffers);
    for (size_t i = 0; i < returned_.size(); ++i)
      io_uring_buf_ring_add(buffer_ring_, buffer(returned_[i]), kBufferBytes, returned_[i], mask,
                            static_cast<int>(i));
    io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(returned_.size()));
    returned_.clear();
  }

  char* buffer(uint16_t id) const noexcept { return buffers_ + size_t{id} * kBufferBytes; }

  static uint64_t receive_data(int fd, const Watch& w) noexcept {
    return kReceiveBit | uint64_t{w.receive_generation} << 32 | static_cast<uint32_t>(fd);
  }

  void arm_receive(int fd, Watch& w) noexcept {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_recv(sqe, fd, nullptr, 0, 0);
    // Armed after bytes were taken: the socket is most likely empty, so wait for data first.
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, receive_data(fd, w));
    w.receive_armed = true;
  }

  void cancel_receive(int fd, const Watch& w) noexcept {
    if (!w.receive_armed) return;
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, receive_data(fd, w), 0);
    io_uring_sqe_set_data64(sqe, kQuiet);
  }

  // The registration goes: its receive is cancelled and whatever it still reports is dropped.
  void drop_receive(int fd, Watch& w) noexcept {
    cancel_receive(fd, w);
    w.receive_armed = false;
    w.receiving = false;
    w.receive_generation = w.receive_generation + 1;
  }

  // A receive completion: true when it goes to the handler (written to ev).
  bool report_received(const io_uring_cqe& cqe, epoll_event& ev) noexcept {
    const uint64_t data = cqe.user_data;
    if (cqe.flags & IORING_CQE_F_BUFFER)  // back to the ring at the next wait, whatever happens
      returned_.push_back(static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
    const size_t fd = static_cast<uint32_t>(data);
    if (fd >= watches_.size()) return false;
    Watch& w = watches_[fd];
    if (!w.watched || !w.receive_armed || w.receive_generation != static_cast<uint16_t>(data >> 32))
      return false;  // a registration that is gone
    // The request ends with its one completion. Still receiving after bytes, a dry ring or a
    // cancel that a new receive() overtook: armed again at the next wait.
    w.receive_armed = false;
    if (w.receiving && (cqe.res > 0 || cqe.res == -ENOBUFS || cqe.res == -ECANCELED))
      rearm_receive_.push_back(static_cast<int>(fd));
    else if (cqe.res <= 0)
      w.receiving = false;  // the peer's FIN or an error: nothing more comes
    if (cqe.res == -ECANCELED) return false;
    // -ENOBUFS goes to the handler too: its bytes wait in the socket, and a handler that reads
    // them itself now (TcpConnection does) keeps a descriptor from losing the race for buffers
    // turn after turn (at 1,000 connections some waited 300 ms when it was only armed again).
    Received& r = received_[received_used_++];
    r.tag = w.tag;
    r.data = cqe.res > 0 && (cqe.flags & IORING_CQE_F_BUFFER)
                 ? buffer(static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT))
                 : nullptr;
    r.result = cqe.res;
    ev.events = kReceived;
    ev.data.ptr = &r;
    return true;
  }

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
  io_uring_buf_ring* buffer_ring_ = nullptr;
  char* buffers_ = nullptr;         // null: no completion receive
  std::vector<uint16_t> returned_;  // buffers the last batch used
  std::vector<int> rearm_receive_;  // receives that ended early; armed again at the next wait
  std::vector<Received> received_;  // this batch's receive completions (data.ptr of events)
  size_t received_used_ = 0;
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
