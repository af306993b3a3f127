// ThreadConnection's verbs: what any thread may ask of a connection (send, shutdown, close,
// pause, ...) and its timers. Each changes state under the connection's mutex and wakes its
// thread; the loop itself is in thread_connection.cc.
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "../net/file_queue.h"
#include "thread_connection.h"

namespace keel::detail {

void ThreadConnection::wake() noexcept {
  // One write per wake-up: the thread clears the flag before it looks at the state again.
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void ThreadConnection::refresh_state_locked() noexcept {
  if (state_ == ConnectionState::closed || state_ == ConnectionState::connecting) return;
  state_ = state_of_open_connection(peer_fin_, fin_sent_, fin_requested_);
}

void ThreadConnection::close_locked(CloseReason reason) {
  if (state_ == ConnectionState::closed) return;
  state_ = ConnectionState::closed;
  close_reason_ = std::move(reason);
  output_ = Buffer();  // dropped now: a closed connection holds no output memory
  files_.reset();
}

bool ThreadConnection::output_pending_locked() const noexcept {
  return !output_.empty() || (files_ && !files_->empty());
}

size_t ThreadConnection::queued_bytes_locked() const noexcept {
  return output_.readable_bytes() + (files_ ? files_->after_bytes() : 0);
}

bool ThreadConnection::closed() const {
  std::lock_guard lock(mutex_);
  return closed_locked();
}

bool ThreadConnection::queue_locked(std::string_view bytes, bool own, bool& wake_thread) {
  if (bytes.empty()) return true;
  if (tap_) [[unlikely]]
    tap_->on_bytes(ConnectionTap::Direction::out, bytes);
  if (files_ && files_->append_after(bytes)) [[unlikely]] {
    note_queued_locked(wake_thread);
    return true;
  }
  // Only the connection's own thread touches the socket; others queue and wake it.
  if (own && output_.empty()) {
    ssize_t n = write_output(socket_.fd(), stream_.get(), bytes.data(), bytes.size());
    if (n >= 0) {
      bytes_out_ += static_cast<uint64_t>(n);
      if (n > 0) note_activity();
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (errno != EAGAIN && errno != EINTR) {
      close_locked(close_reason_for(errno, stream_.get()));
      return false;
    }
    if (bytes.empty()) return true;
  }
  if (output_.empty()) wake_thread = true;  // the thread starts watching POLLOUT
  output_.append(bytes);
  note_queued_locked(wake_thread);
  return true;
}

void ThreadConnection::note_queued_locked(bool& wake_thread) {
  if (queued_bytes_locked() > host_.high_water_bytes && !high_water_reported_) {
    high_water_reported_ = true;
    high_water_due_ = true;  // acted on at the next turn, never inside this call
    wake_thread = true;
  }
}

bool ThreadConnection::send_file(FileRegion region) {
  const bool own = on_own_thread();
  {
    std::lock_guard lock(mutex_);
    if (closed_locked() || fin_requested_ || state_ == ConnectionState::connecting) return false;
    if (region.length == 0) return true;
    if (!files_) files_ = std::make_unique<FileQueue>();
    files_->push(std::move(region));
  }
  // The thread starts watching POLLOUT at its next turn (its own: right after this callback).
  if (!own) wake();
  return true;
}

bool ThreadConnection::send(std::string_view bytes) {
  const bool own = on_own_thread();
  bool wake_thread = false;
  {
    std::lock_guard lock(mutex_);
    // Before open nobody (service or operator) has been told of this connection.
    if (closed_locked() || fin_requested_ || state_ == ConnectionState::connecting) return false;
    if (!queue_locked(bytes, own, wake_thread)) return false;
  }
  if (wake_thread && !own) wake();
  return true;
}

bool ThreadConnection::shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (closed_locked()) return false;
    if (state_ == ConnectionState::connecting)
      close_locked({CloseReason::Kind::local, 0, "shut down before it opened"});
    fin_requested_ = true;  // settle() sends the FIN once output is empty
    refresh_state_locked();
  }
  if (!on_own_thread()) wake();
  return true;
}

bool ThreadConnection::close(std::string_view reason) {
  {
    std::lock_guard lock(mutex_);
    if (closed_locked()) return false;
    close_locked({CloseReason::Kind::local, 0, std::string(reason)});
  }
  if (!on_own_thread()) wake();
  return true;
}

bool ThreadConnection::close_gracefully(std::string_view last_line, std::string_view reason,
                                        std::optional<std::chrono::milliseconds> grace) {
  const bool own = on_own_thread();
  {
    // One critical section: no other thread's send may land after the last line.
    std::lock_guard lock(mutex_);
    if (closed_locked()) return false;
    if (state_ == ConnectionState::connecting) {  // nothing to drain: the service never saw it
      close_locked({CloseReason::Kind::local, 0, std::string(reason)});
      if (!own) wake();
      return true;
    }
    bool wake_thread = false;
    if (!fin_requested_ && !queue_locked(last_line, own, wake_thread)) return false;
    graceful_reason_ = std::string(reason);
    discard_input_ = true;
    paused_ = false;  // keep reading (and discarding) so the peer's FIN is seen
    fin_requested_ = true;
    refresh_state_locked();
    if (grace) grace_deadline_ = std::min(grace_deadline_, Clock::now() + *grace);
  }
  if (!own) wake();
  return true;
}

bool ThreadConnection::fin_requested_or_closed() const {
  std::lock_guard lock(mutex_);
  return fin_requested_ || closed_locked();
}

bool ThreadConnection::pause_reading() {
  {
    std::lock_guard lock(mutex_);
    if (closed_locked()) return false;
    if (!discard_input_) paused_ = true;
  }
  if (!on_own_thread()) wake();
  return true;
}

bool ThreadConnection::resume_reading() {
  {
    std::lock_guard lock(mutex_);
    if (closed_locked()) return false;
    paused_ = false;
  }
  if (!on_own_thread()) wake();
  return true;
}

std::optional<ClientSnapshot> ThreadConnection::snapshot() const {
  std::lock_guard lock(mutex_);
  if (closed_locked()) return std::nullopt;
  ClientSnapshot s;
  s.id = id_;
  s.peer = peer_;
  s.state = service_opened_ ? state_ : ConnectionState::connecting;
  s.opened_at = opened_at_;
  s.bytes_in = bytes_in_.load(std::memory_order_relaxed);
  s.bytes_out = bytes_out_;
  s.queued_bytes = queued_bytes_locked();
  s.buffer_bytes = input_memory_.load(std::memory_order_relaxed) + output_.capacity();
  s.reading_paused = paused_;
  s.transport = transport_;
  return s;
}

TimerId ThreadConnection::start_timer(std::chrono::milliseconds delay, Server::TimerTask fn) {
  if (!on_own_thread() || closed()) return 0;
  TimerId timer = next_timer_id_++;
  Clock::time_point when = Clock::now() + delay;
  timers_.emplace(std::pair{when, timer}, std::move(fn));
  timer_deadlines_.emplace(timer, when);
  return timer;
}

void ThreadConnection::cancel_timer(TimerId timer) {
  if (!on_own_thread()) return;
  auto it = timer_deadlines_.find(timer);
  if (it == timer_deadlines_.end()) return;
  timers_.erase({it->second, timer});
  timer_deadlines_.erase(it);
}

}  // namespace keel::detail
