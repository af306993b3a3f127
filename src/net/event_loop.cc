#include "keel/net/event_loop.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "connection_slab.h"
#include "keel/error.h"
#include "keel/net/tcp_connection.h"
#include "poller.h"

namespace keel {
namespace {

thread_local EventLoop* t_current_loop = nullptr;

// Marker handlers for the loop's own descriptors; never called.
char kWakeTag;
char kTimerTag;

std::unique_ptr<Poller> make_poller(IoBackend io) {
  if (io == IoBackend::uring) {
    std::string why;
    if (auto poller = make_uring_poller(&why)) return poller;
    static std::once_flag said;
    std::call_once(said, [&why] {
      std::fprintf(stderr, "keel: io_uring refused (%s): event loops use epoll\n", why.c_str());
    });
  }
  return make_epoll_poller();
}

}  // namespace

EventLoop::EventLoop(uint32_t index, IoBackend io)
    : index_(index), poller_(make_poller(io)), slab_(std::make_unique<ConnectionSlab>(index)) {
  scratch_.ensure_writable(kScratchBytes);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw_system_error("eventfd", "", errno);
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) throw_system_error("timerfd_create", "", errno);
  if (int err = poller_->add(wake_fd_, EPOLLIN, &kWakeTag))
    throw_system_error("watch", "the loop's eventfd", err);
  if (int err = poller_->add(timer_fd_, EPOLLIN, &kTimerTag))
    throw_system_error("watch", "the loop's timerfd", err);
  receives_ = poller_->receives();
}

EventLoop::~EventLoop() {
  // Connections still here are destroyed without callbacks (their owners are gone too).
  slab_.reset();
  poller_.reset();  // before the descriptors it watches
  ::close(timer_fd_);
  ::close(wake_fd_);
}

IoBackend EventLoop::io_backend() const noexcept {
  return poller_->backend();
}

EventLoop* EventLoop::current() noexcept {
  return t_current_loop;
}

bool EventLoop::in_loop_thread() const noexcept {
  std::thread::id running = thread_id_.load(std::memory_order_acquire);
  // Not running (before run() binds a thread, or after it returns): the loop belongs to the
  // thread that constructed it, which sets it up and tears it down; no other thread.
  if (running == std::thread::id()) return creator_ == std::this_thread::get_id();
  return running == std::this_thread::get_id();
}

void EventLoop::assert_in_loop() const noexcept {
#ifndef NDEBUG
  if (!in_loop_thread()) {
    std::fprintf(stderr, "keel: EventLoop %u used off its thread\n", index_);
    std::abort();
  }
#endif
}

void EventLoop::run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
  t_current_loop = this;
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  while (!quit_.load(std::memory_order_acquire)) {
    int n = poller_->wait(events, kMaxEvents, deferred_.empty());
    if (n < 0) {
      if (n == -EINTR) continue;
      std::fprintf(stderr, "keel: %s wait: %s\n", std::string(to_string(io_backend())).c_str(),
                   errno_text(-n).c_str());
      std::abort();
    }
    const bool timed = ++turn_sample_ % kTurnSampleEvery == 0;
    const Clock::time_point turn_start = timed ? Clock::now() : Clock::time_point();
    // Activity stamps need the time only while some connection has a deadline.
    if (!wheel_.empty()) wheel_now();
    bool woken = false;
    bool timers_due = false;
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &kWakeTag) {
        woken = true;
      } else if (tag == &kTimerTag) {
        timers_due = true;
      } else if (events[i].events == kReceived) {
        const Received* r = static_cast<const Received*>(tag);
        static_cast<IoHandler*>(r->tag)->handle_received(r->data, r->result);
      } else {
        static_cast<IoHandler*>(tag)->handle_events(events[i].events);
      }
    }
    if (timers_due) run_timers();
    // Posts made without a wake-up found one still pending, so "not woken" means "nothing
    // posted": the mutex is only taken on turns that have posted work.
    if (woken) {
      drain_wakeups();
      run_posted();
    }
    run_deferred();
    destroy_retired();
    if (timed) record_turn(Clock::now() - turn_start);
  }
  // Run what was posted before quit so no closure is silently lost (it may post no more).
  run_posted();
  run_deferred();
  destroy_retired();
  t_current_loop = nullptr;
  // Unbound again: the thread that constructed the stopped loop may tear down what is on it.
  thread_id_.store(std::thread::id(), std::memory_order_release);
}

void EventLoop::record_turn(std::chrono::nanoseconds took) noexcept {
  const uint64_t ns = static_cast<uint64_t>(std::max<int64_t>(took.count(), 0));
  size_t i = 0;
  while (i < kTurnBucketsUs.size() && ns > uint64_t{kTurnBucketsUs[i]} * 1000) ++i;
  auto bump = [](std::atomic<uint64_t>& a, uint64_t by) {
    a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  };
  bump(turn_counts_[i], 1);
  bump(turn_sum_ns_, ns);
}

EventLoop::TurnHistogram EventLoop::turn_histogram() const noexcept {
  TurnHistogram h;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    h.counts[i] = turn_counts_[i].load(std::memory_order_relaxed);
    h.count += h.counts[i];
  }
  h.sum_ns = turn_sum_ns_.load(std::memory_order_relaxed);
  return h;
}

void EventLoop::quit() {
  quit_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void EventLoop::post(Task task) {
  {
    std::lock_guard lock(posted_mutex_);
    posted_.push_back(std::move(task));
  }
  // One eventfd write per batch of posts, not per post.
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
}

void EventLoop::defer(Task task) {
  assert_in_loop();
  deferred_.push_back(std::move(task));
}

void EventLoop::drain_wakeups() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
}

void EventLoop::run_posted() {
  std::vector<Task> tasks;
  {
    std::lock_guard lock(posted_mutex_);
    tasks.swap(posted_);
    wake_pending_.store(false, std::memory_order_release);
  }
  for (auto& task : tasks) task();
}

void EventLoop::run_deferred() {
  if (deferred_.empty()) return;
  // Deferred tasks may defer more; those run on the next turn (the wait won't block).
  std::vector<Task> deferred;
  deferred.swap(deferred_);
  for (auto& task : deferred) task();
}

TimerId EventLoop::run_after(std::chrono::milliseconds delay, Task task) {
  return add_timer(Clock::now() + delay, std::chrono::milliseconds(0), std::move(task));
}

TimerId EventLoop::run_every(std::chrono::milliseconds interval, Task task) {
  if (interval.count() <= 0) interval = std::chrono::milliseconds(1);
  return add_timer(Clock::now() + interval, interval, std::move(task));
}

TimerId EventLoop::add_timer(Clock::time_point when, std::chrono::milliseconds interval,
                             Task task) {
  assert_in_loop();
  TimerId id = next_timer_id_++;
  timers_.emplace(std::make_pair(when, id), Timer{std::move(task), interval});
  timer_deadlines_.emplace(id, when);
  arm_timerfd();
  return id;
}

void EventLoop::cancel_timer(TimerId id) {
  assert_in_loop();
  auto it = timer_deadlines_.find(id);
  if (it == timer_deadlines_.end()) return;
  timers_.erase(std::make_pair(it->second, id));
  timer_deadlines_.erase(it);
  arm_timerfd();
}

void EventLoop::arm_timerfd() {
  Clock::time_point next =
      timers_.empty() ? Clock::time_point::max() : timers_.begin()->first.first;
  if (next == armed_deadline_) return;
  armed_deadline_ = next;
  itimerspec spec{};
  if (next != Clock::time_point::max()) {
    auto delta = std::chrono::duration_cast<std::chrono::nanoseconds>(next - Clock::now());
    // A zero it_value disarms the timer, so a past deadline becomes "1 ns from now".
    long long ns = std::max<long long>(delta.count(), 1);
    spec.it_value.tv_sec = ns / 1000000000;
    spec.it_value.tv_nsec = ns % 1000000000;
  }
  ::timerfd_settime(timer_fd_, 0, &spec, nullptr);
}

void EventLoop::run_timers() {
  uint64_t expirations;
  [[maybe_unused]] ssize_t n = ::read(timer_fd_, &expirations, sizeof expirations);
  armed_deadline_ = Clock::time_point::max();
  Clock::time_point now = Clock::now();
  // Take due timers one at a time: a task may add or cancel timers.
  while (!timers_.empty() && timers_.begin()->first.first <= now) {
    auto node = timers_.extract(timers_.begin());
    TimerId id = node.key().second;
    Timer& timer = node.mapped();
    if (timer.interval.count() > 0) {
      Clock::time_point next = node.key().first + timer.interval;
      if (next <= now) next = now + timer.interval;  // skip missed ticks, don't burst
      timer.task();
      // The task may have cancelled its own repeating timer.
      auto it = timer_deadlines_.find(id);
      if (it != timer_deadlines_.end()) {
        it->second = next;
        node.key() = std::make_pair(next, id);
        timers_.insert(std::move(node));
      }
    } else {
      timer_deadlines_.erase(id);
      timer.task();
    }
  }
  arm_timerfd();
}

TimerWheel::Tick EventLoop::wheel_now() noexcept {
  auto since = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - wheel_epoch_);
  turn_tick_ = static_cast<TimerWheel::Tick>(since / kWheelTick) + 1;  // tick 0 means "none"
  return turn_tick_;
}

void EventLoop::arm_deadline(ConnectionId id, TimerWheel::Tick due) {
  assert_in_loop();
  if (wheel_.empty()) wheel_.reset(wheel_now());
  wheel_.schedule(id, due);
  if (!wheel_timer_) wheel_timer_ = run_every(kWheelTick, [this] { advance_wheel(); });
}

void EventLoop::advance_wheel() {
  TimerWheel::Tick now = wheel_now();
  wheel_.advance(now, [this, now](ConnectionId id, TimerWheel::Tick due) {
    if (TcpConnection* c = slab_->find(id)) c->deadline_reached(due, now);
  });
  if (wheel_.empty() && wheel_timer_) cancel_timer(std::exchange(wheel_timer_, 0));
}

void EventLoop::watch(int fd, uint32_t events, IoHandler* handler) {
  assert_in_loop();
  if (int err = poller_->add(fd, events, handler))
    throw_system_error("watch", "fd " + std::to_string(fd), err);
}

int EventLoop::rewatch(int fd, uint32_t events, IoHandler* handler) noexcept {
  assert_in_loop();
  return poller_->modify(fd, events, handler);
}

void EventLoop::unwatch(int fd) noexcept {
  assert_in_loop();
  int err = poller_->remove(fd);
  // Closed (the kernel dropped it from the set) or never added: nothing can reach the handler.
  if (err == 0 || err == EBADF || err == ENOENT) return;
  std::fprintf(stderr, "keel: unwatch fd %d: %s\n", fd, errno_text(err).c_str());
  std::abort();
}

int EventLoop::receive(int fd) noexcept {
  assert_in_loop();
  return poller_->receive(fd);
}

void EventLoop::stop_receive(int fd) noexcept {
  assert_in_loop();
  poller_->stop_receive(fd);
}

ConnectionId EventLoop::add_connection(std::unique_ptr<TcpConnection> connection) {
  assert_in_loop();
  return slab_->add(std::move(connection));
}

TcpConnection* EventLoop::find(ConnectionId id) const noexcept {
  assert_in_loop();
  return slab_->find(id);
}

void EventLoop::mark_closing(ConnectionId id) noexcept {
  slab_->mark_closing(id);
}

void EventLoop::retire(ConnectionId id) {
  assert_in_loop();
  retired_.push_back(id);
}

void EventLoop::destroy_retired() {
  // Destroying may retire more (rare); loop until quiet.
  while (!retired_.empty()) {
    std::vector<ConnectionId> batch;
    batch.swap(retired_);
    for (ConnectionId id : batch) slab_->remove(id);
  }
}

void EventLoop::for_each_connection(const std::function<void(TcpConnection&)>& fn) const {
  assert_in_loop();
  slab_->for_each(fn);
}

size_t EventLoop::connection_count() const noexcept {
  return slab_->size();
}

bool EventLoop::is_live(ConnectionId id) const noexcept {
  return slab_->is_live(id);
}

bool EventLoop::send(ConnectionId id, std::string_view bytes) {
  if (current() == this) {  // on this loop's running thread: act now
    TcpConnection* c = slab_->find(id);
    return c && c->send(bytes);
  }
  if (!slab_->is_live(id)) return false;
  post([this, id, data = std::string(bytes)] {
    if (TcpConnection* c = slab_->find(id)) c->send(data);
  });
  return true;
}

bool EventLoop::send_file(ConnectionId id, FileRegion region) {
  if (current() == this) {
    TcpConnection* c = slab_->find(id);
    return c && c->send_file(std::move(region));
  }
  if (!slab_->is_live(id)) return false;
  post([this, id, region = std::move(region)]() mutable {
    if (TcpConnection* c = slab_->find(id)) c->send_file(std::move(region));
  });
  return true;
}

bool EventLoop::shutdown(ConnectionId id) {
  if (!slab_->is_live(id)) return false;
  post([this, id] {
    if (TcpConnection* c = slab_->find(id)) c->shutdown();
  });
  return true;
}

bool EventLoop::close(ConnectionId id, std::string_view reason) {
  if (!slab_->is_live(id)) return false;
  post([this, id, why = std::string(reason)] {
    if (TcpConnection* c = slab_->find(id)) c->force_close(why);
  });
  return true;
}

}  // namespace keel
