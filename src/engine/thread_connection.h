// ThreadConnection: one client of the threads engine and the loop its own thread runs: poll()
// on the socket and an eventfd, the nearest timer as the timeout. Its state moves in one place
// (settle(), at the top of each turn), so a callback never runs inside the call that caused it.
// Thread safety: run(), start_timer() and cancel_timer() on the connection's own thread; the
// verbs (send, shutdown, close, ...) and snapshot() from any thread: they change state under
// the connection's mutex and wake its thread, and never wait for the client.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "keel/engine/engine.h"
#include "keel/net/buffer.h"
#include "keel/net/socket.h"
#include "keel/net/stream.h"

namespace keel {
class FileQueue;
}

namespace keel::detail {

// What connection threads need from their engine. Owned by the engine, outlives its threads.
struct ConnectionHost {
  Server& server;
  Service& service;
  size_t high_water_bytes;
  std::chrono::milliseconds evict_grace;
  const StreamOptions& stream;
  // On the connection thread, after on_close: the id is gone, the thread is about to end.
  std::function<void(ConnectionId)> finished;
  ConnectionTimeouts timeouts = {};
  // Counts every close by CloseReason::Kind (null: not counted).
  std::array<std::atomic<uint64_t>, CloseReason::kKinds>* closed = nullptr;
  // When the connection would open (the client's address known): whether it may (per-address
  // cap). False: it is sent the service's refusal line and closed unseen. Unset: always.
  std::function<bool(const Endpoint& peer)> admit = {};
  // After on_close of a connection admit() let in.
  std::function<void(const Endpoint& peer)> release = {};
};

class ThreadConnection {
 public:
  using Clock = std::chrono::steady_clock;
  // Room of the per-connection read scratch, which is given back after a short read: 64 KiB
  // with the buffer's prepend area. (64 KiB of room would make a 128 KiB block, which glibc and
  // the sanitizers' allocators serve by mmap/munmap until glibc's threshold adapts.)
  static constexpr size_t kScratchBytes = 64 * 1024 - Buffer::kPrependBytes;

  // wake_fd: a non-blocking eventfd, owned from now on.
  // peer: the address accept4 reported (unset: ask the socket).
  ThreadConnection(const ConnectionHost& host, Socket socket, int wake_fd, ConnectionId id,
                   const Endpoint& peer);
  ~ThreadConnection();
  ThreadConnection(const ThreadConnection&) = delete;
  // Whether this connection belongs to the engine that made host.
  bool hosted_by(const ConnectionHost& host) const noexcept { return &host_ == &host; }
  ThreadConnection& operator=(const ThreadConnection&) = delete;

  // The connection thread's body: on_open, the loop, on_close, host.finished.
  void run();

  ConnectionId id() const noexcept { return id_; }
  // The connection whose thread the caller is on, or nullptr.
  static ThreadConnection* current() noexcept;

  // Any thread. False when the connection is closed (or, for send, finishing).
  bool send(std::string_view bytes);
  bool send_file(FileRegion region);
  bool shutdown();
  bool close(std::string_view reason);
  // grace: nullopt waits for the peer as long as it takes (drain sets its own deadline).
  bool close_gracefully(std::string_view last_line, std::string_view reason,
                        std::optional<std::chrono::milliseconds> grace);
  bool pause_reading();
  bool resume_reading();
  // nullopt once closed.
  std::optional<ClientSnapshot> snapshot() const;
  // Engine::set_tap / clear_tap for this connection. The tap is called under mutex_ only, so
  // one set or cleared here is never in use on another thread afterwards.
  void set_tap(std::unique_ptr<ConnectionTap> tap);
  void clear_tap(const ConnectionTap* tap);

  // Own thread only (0 / no-op elsewhere or once closed).
  TimerId start_timer(std::chrono::milliseconds delay, Server::TimerTask fn);
  void cancel_timer(TimerId timer);

 private:
  struct Interest {
    short events = 0;
    Clock::time_point deadline = Clock::time_point::max();
  };

  bool on_own_thread() const noexcept { return current() == this; }
  void wake() noexcept;
  // Owed state moves and reports; false once the connection is closed.
  bool settle();
  Interest interest();
  // The stream's pre-open stage, polling this thread's socket and wake-up eventfd; false when
  // the connection closed instead of opening.
  bool open_stream();
  bool stream_input_pending() const;
  void handle_read(short revents);
  // For snapshot(): what input_ and scratch_ hold, as other threads may not look at them.
  void publish_input_memory() noexcept;
  void handle_write();
  void run_due_timers();
  // Closes the connection when its idle or half-close deadline has passed.
  void check_deadlines();
  // The nearer of the idle and half-close deadlines (max(): none).
  Clock::time_point deadline() const;
  // A byte went either way: the idle deadline moves.
  void note_activity() {
    if (host_.timeouts.idle.count() > 0) last_active_ = Clock::now();
  }
  void finish();
  // The n bytes just read, at the end of in, to the tap (if it is still there).
  void tap_input(const Buffer& in, size_t n);
  void act_on_high_water(size_t queued);

  // Callers hold mutex_.
  // Writes now (own thread, nothing queued) and queues the rest; false if the socket failed.
  // Sets wake_thread when the connection's thread must look again.
  bool queue_locked(std::string_view bytes, bool own, bool& wake_thread);
  // Output grew: the high-water mark is acted on at the next turn if it was crossed.
  void note_queued_locked(bool& wake_thread);
  void close_locked(CloseReason reason);
  void refresh_state_locked() noexcept;
  bool closed_locked() const noexcept { return state_ == ConnectionState::closed; }
  // Anything waiting to be written: the output buffer or a queued file region.
  bool output_pending_locked() const noexcept;
  size_t queued_bytes_locked() const noexcept;
  // These take mutex_.
  bool closed() const;
  bool fin_requested_or_closed() const;
  bool closed_or_discarding() const;

  const ConnectionHost& host_;
  const ConnectionId id_;
  Endpoint peer_;  // written (under mutex_) only by the connection's thread, before on_open
  const Clock::time_point opened_at_;
  const int wake_fd_;
  std::atomic<bool> wake_pending_{false};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<size_t> input_memory_{0};
  Socket socket_;                   // used and closed on the connection thread only
  std::unique_ptr<Stream> stream_;  // connection thread only; null: plain socket I/O

  mutable std::mutex mutex_;
  Buffer output_;
  std::unique_ptr<FileQueue> files_;  // null unless a file region is queued
  ConnectionState state_ = ConnectionState::open;
  CloseReason close_reason_;  // set when state_ becomes closed
  std::string graceful_reason_;
  std::string transport_;               // stream_->describe() once open, for snapshot()
  std::unique_ptr<ConnectionTap> tap_;  // null unless an operator watches
  Clock::time_point grace_deadline_ = Clock::time_point::max();
  uint64_t bytes_out_ = 0;
  // Set once the service's on_open has returned: until then visit lists the connection as
  // connecting, as the reactor does (its service does not know it yet).
  bool service_opened_ = false;
  bool paused_ = false;
  bool peer_fin_ = false;
  bool fin_requested_ = false;
  bool fin_sent_ = false;
  bool discard_input_ = false;
  bool high_water_reported_ = false;  // until the queue falls back under the mark
  bool high_water_due_ = false;       // to be acted on at the next turn

  // Connection thread only.
  Clock::time_point last_active_;  // a byte went either way (only with an idle timeout)
  Clock::time_point fin_sent_at_;
  Buffer input_;
  Buffer scratch_;  // the read area; bytes move to input_ only if the service leaves them
  TimerId next_timer_id_ = 1;
  std::map<std::pair<Clock::time_point, TimerId>, Server::TimerTask> timers_;
  std::map<TimerId, Clock::time_point> timer_deadlines_;
};

}  // namespace keel::detail
