// EventLoop: one per thread. Waits on its poller (epoll or io_uring, io_backend.h), runs I/O
// handlers, timers (one timerfd) and closures posted from other threads (woken by an eventfd). It
// also owns the connections that live on it.
// Thread safety: post(), quit(), send(), shutdown(), close() and in_loop_thread() may be called
// from any thread; everything else only on the loop's thread: the thread in run() while it runs,
// the thread that constructed the loop while it does not (before run() and after it returns).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "keel/net/buffer.h"
#include "keel/net/connection_id.h"
#include "keel/net/file_region.h"
#include "keel/net/io_backend.h"
#include "keel/net/timer_wheel.h"

namespace keel {

class TcpConnection;
class ConnectionSlab;
class Poller;

// Receives readiness events for one watched file descriptor.
class IoHandler {
 public:
  virtual void handle_events(uint32_t epoll_events) = 0;
  // Completion receive (EventLoop::receive): bytes read from the descriptor (result of them,
  // valid during the call only), 0 for the peer's FIN, or -errno. In the socket's order.
  // -ENOBUFS is not an end: the loop's buffers ran out, the bytes wait in the socket (read them
  // now, or they come with a later completion).
  virtual void handle_received(const char* /*data*/, int /*result*/) {}

 protected:
  ~IoHandler() = default;
};

using TimerId = uint64_t;

class EventLoop {
 public:
  using Task = std::function<void()>;
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kScratchBytes = 64 * 1024;

  // index: this loop's place in its pool, carried in every ConnectionId it hands out.
  // io: how it waits (io_backend.h); uring where the kernel refuses it gives epoll, said once
  // per process on stderr.
  explicit EventLoop(uint32_t index = 0, IoBackend io = default_io_backend());
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until quit(). Binds the loop to the calling thread.
  void run();
  void quit();
  // Runs task on the loop thread on a later turn; never inside the call to post().
  void post(Task task);
  // Loop thread: runs task at the end of the current turn (after this turn's events), without
  // locking or waking. This is how callbacks are kept out of the calls that cause them.
  void defer(Task task);

  // True on the thread in run() while the loop runs; otherwise on the thread that constructed it.
  bool in_loop_thread() const noexcept;
  // Aborts in debug builds when called off the loop thread (in_loop_thread() is false).
  void assert_in_loop() const noexcept;
  uint32_t index() const noexcept { return index_; }
  // The backend this loop waits with (epoll when uring was asked for and refused).
  IoBackend io_backend() const noexcept;
  // The loop running on the calling thread, or nullptr.
  static EventLoop* current() noexcept;

  // Timers fire in deadline order; equal deadlines in the order they were added.
  TimerId run_after(std::chrono::milliseconds delay, Task task);
  TimerId run_every(std::chrono::milliseconds interval, Task task);
  // Cancelling a timer that already fired (or an unknown id) does nothing.
  void cancel_timer(TimerId id);

  // Connection deadlines (idle, half-close, pre-open) on a hashed timing wheel: O(1) to arm,
  // and free to postpone (the connection keeps its own deadline and re-arms when its entry
  // fires). The wheel ticks every kWheelTick while it holds entries; a deadline fires at most
  // two ticks late, never early.
  static constexpr std::chrono::milliseconds kWheelTick{50};
  // The wheel's tick as of the start of this turn (kept only while the wheel holds entries).
  TimerWheel::Tick wheel_tick() const noexcept { return turn_tick_; }
  // Reads the clock: the current tick (and makes it this turn's).
  TimerWheel::Tick wheel_now() noexcept;
  // The tick by which a deadline of d from tick start has surely passed.
  static TimerWheel::Tick deadline_after(TimerWheel::Tick start, uint32_t d_ms) noexcept {
    constexpr uint32_t tick = static_cast<uint32_t>(kWheelTick.count());
    return start + (d_ms + tick - 1) / tick + 1;
  }
  // When tick t began (the clock time a wheel_now() that returned t read, to within a tick).
  Clock::time_point time_of_tick(TimerWheel::Tick t) const noexcept {
    return wheel_epoch_ + kWheelTick * (t ? t - 1 : 0);
  }
  // Calls TcpConnection::deadline_reached on id once the wheel reaches tick due.
  void arm_deadline(ConnectionId id, TimerWheel::Tick due);

  // Readiness registration (EPOLLIN/EPOLLOUT/...; level-triggered with either backend). The
  // handler must stay alive until unwatch(). watch() throws keel::Error when the poller refuses
  // the descriptor.
  void watch(int fd, uint32_t events, IoHandler* handler);
  // 0, or the errno of the failed change (ENOENT: fd is no longer the watched file, e.g. it
  // was closed or replaced behind the loop's back; io_uring cannot tell and says 0). On failure the
  // fd is not watched any more as asked, so the caller must close what it belongs to instead of
  // waiting for events.
  [[nodiscard]] int rewatch(int fd, uint32_t events, IoHandler* handler) noexcept;
  // Stops events for fd. A descriptor already closed or never watched (EBADF, ENOENT) is
  // harmless; any other failure would leave the handler reachable from the poller, so it aborts.
  // Unwatch before closing: with io_uring the pending poll holds the file open until then.
  void unwatch(int fd) noexcept;
  // Completion receive, where the backend has it (io_uring with a provided-buffer ring, Linux
  // 5.19+): the watched fd's bytes go to its handler's handle_received as the kernel reads them,
  // with no readiness event and no read call; leave EPOLLIN out of its watch meanwhile.
  // receive() gives 0 or an errno (ENOTSUP where receives_completions() is false).
  // After stop_receive() at most one more handle_received comes (one buffer, up to 64 KiB, that
  // the kernel had already read); after unwatch() none.
  bool receives_completions() const noexcept { return receives_; }
  [[nodiscard]] int receive(int fd) noexcept;
  void stop_receive(int fd) noexcept;

  // Connections living on this loop.
  ConnectionId add_connection(std::unique_ptr<TcpConnection> connection);
  TcpConnection* find(ConnectionId id) const noexcept;
  // The connection started closing: its id is stale for other threads from now on.
  void mark_closing(ConnectionId id) noexcept;
  // Destroys the connection at the end of this turn (after every pending event is handled).
  void retire(ConnectionId id);
  // Calls fn for each live connection on this loop.
  void for_each_connection(const std::function<void(TcpConnection&)>& fn) const;
  size_t connection_count() const noexcept;

  // Any thread. Return false when id is stale (already closed) or not on this loop.
  bool send(ConnectionId id, std::string_view bytes);
  bool send_file(ConnectionId id, FileRegion region);
  bool shutdown(ConnectionId id);
  bool close(ConnectionId id, std::string_view reason);
  bool is_live(ConnectionId id) const noexcept;

  // How long turns take (from the poller's return to the next wait: the time every handler on
  // this loop may be kept waiting). One turn in kTurnSampleEvery is timed, so a busy loop reads
  // the clock a fraction of a time per turn. Buckets: upper bounds in microseconds.
  static constexpr uint32_t kTurnSampleEvery = 8;
  static constexpr std::array<uint32_t, 12> kTurnBucketsUs = {
      10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000};
  struct TurnHistogram {
    std::array<uint64_t, kTurnBucketsUs.size() + 1> counts{};  // per bucket; last: over 1 s
    uint64_t sum_ns = 0;
    uint64_t count = 0;
  };
  // Any thread (relaxed reads of the loop's own counters).
  TurnHistogram turn_histogram() const noexcept;

  // The loop's shared read area: bytes read here are moved into a connection only if the
  // service leaves them unconsumed, so an idle connection holds no input memory. Empty between
  // uses; kScratchBytes of room.
  Buffer& scratch() noexcept { return scratch_; }

 private:
  struct Timer {
    Task task;
    std::chrono::milliseconds interval{0};
  };
  void drain_wakeups();
  void run_posted();
  void run_deferred();
  void run_timers();
  void arm_timerfd();
  void destroy_retired();
  void advance_wheel();
  TimerId add_timer(Clock::time_point when, std::chrono::milliseconds interval, Task task);

  const uint32_t index_;
  std::unique_ptr<Poller> poller_;
  bool receives_ = false;
  int wake_fd_ = -1;
  int timer_fd_ = -1;
  std::atomic<bool> quit_{false};
  // The thread in run(), or none while the loop is not running.
  std::atomic<std::thread::id> thread_id_{};
  // Owns the loop while it is not running: sets it up before run() and tears it down after.
  const std::thread::id creator_ = std::this_thread::get_id();

  std::mutex posted_mutex_;
  std::vector<Task> posted_;
  std::atomic<bool> wake_pending_{false};

  TimerId next_timer_id_ = 1;
  std::map<std::pair<Clock::time_point, TimerId>, Timer> timers_;
  std::unordered_map<TimerId, Clock::time_point> timer_deadlines_;
  Clock::time_point armed_deadline_ = Clock::time_point::max();

  TimerWheel wheel_;
  TimerId wheel_timer_ = 0;  // the ticker, while the wheel holds entries
  TimerWheel::Tick turn_tick_ = 0;
  const Clock::time_point wheel_epoch_ = Clock::now();

  std::unique_ptr<ConnectionSlab> slab_;
  std::vector<ConnectionId> retired_;
  std::vector<Task> deferred_;
  Buffer scratch_;

  void record_turn(std::chrono::nanoseconds took) noexcept;
  uint32_t turn_sample_ = 0;
  // Written by the loop thread only (load + store, no read-modify-write), read by any.
  std::array<std::atomic<uint64_t>, kTurnBucketsUs.size() + 1> turn_counts_{};
  std::atomic<uint64_t> turn_sum_ns_{0};
};

}  // namespace keel
