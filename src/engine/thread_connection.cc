#include "thread_connection.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "../net/file_queue.h"
#include "keel/net/admission.h"

namespace keel::detail {
namespace {
thread_local ThreadConnection* t_current = nullptr;

// poll()'s timeout for a deadline: rounded up, so the loop never wakes just before it.
int timeout_ms(std::chrono::steady_clock::time_point deadline) {
  if (deadline == std::chrono::steady_clock::time_point::max()) return -1;
  auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > INT_MAX ? INT_MAX : static_cast<int>(left.count());
}
}  // namespace

ThreadConnection::ThreadConnection(const ConnectionHost& host, Socket socket, int wake_fd,
                                   ConnectionId id, const Endpoint& peer)
    : host_(host),
      id_(id),
      peer_(peer.family() != AF_UNSPEC ? peer : socket.peer_endpoint()),
      opened_at_(Clock::now()),
      wake_fd_(wake_fd),
      socket_(std::move(socket)),
      stream_(host.stream.factory ? host.stream.factory() : nullptr) {}

ThreadConnection::~ThreadConnection() {
  ::close(wake_fd_);
}

ThreadConnection* ThreadConnection::current() noexcept {
  return t_current;
}

void ThreadConnection::run() {
  t_current = this;
  if (stream_ && !open_stream()) {
    // Never opened: the service does not hear of it; the owner's log does.
    socket_.reset();
    if (host_.closed)
      (*host_.closed)[static_cast<size_t>(close_reason_.kind)].fetch_add(1,
                                                                         std::memory_order_relaxed);
    if (host_.stream.on_open_failed) host_.stream.on_open_failed(peer_, close_reason_.to_string());
    host_.finished(id_);
    t_current = nullptr;
    return;
  }
  if (host_.admit && !host_.admit(peer_)) {  // turned away: the service never hears of it
    refuse_socket(std::move(socket_), host_.service.refusal_line(Refusal::per_address),
                  stream_.get());
    host_.finished(id_);
    t_current = nullptr;
    return;
  }
  host_.service.on_open(host_.server, ConnectionInfo{id_, peer_});
  {
    std::lock_guard lock(mutex_);
    service_opened_ = true;
  }
  last_active_ = Clock::now();
  while (settle()) {
    Interest want = interest();
    pollfd fds[2] = {{socket_.fd(), want.events, 0}, {wake_fd_, POLLIN, 0}};
    int rc = ::poll(fds, 2, timeout_ms(want.deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      std::lock_guard lock(mutex_);
      close_locked(CloseReason::from_errno(errno));
      continue;
    }
    if (fds[1].revents & POLLIN) {
      wake_pending_.store(false, std::memory_order_release);
      uint64_t count;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
    }
    short revents = fds[0].revents;
    if (revents & POLLERR) {
      int err = socket_.take_error();
      std::lock_guard lock(mutex_);
      close_locked(CloseReason::from_errno(err ? err : EIO));
      continue;
    }
    // POLLHUP arrives even when reading is paused: read to learn whether it is EOF or an error.
    // A stream may hold input the socket no longer signals (interest() then does not block).
    if ((revents & (POLLIN | POLLHUP)) || ((want.events & POLLIN) && stream_input_pending()))
      handle_read(revents);
    if (revents & POLLOUT) handle_write();
    run_due_timers();
    check_deadlines();
    std::lock_guard lock(mutex_);
    if (!closed_locked() && Clock::now() >= grace_deadline_)
      close_locked({CloseReason::Kind::local, 0, graceful_reason_ + " (did not close in time)"});
  }
  finish();
  t_current = nullptr;
}

bool ThreadConnection::open_stream() {
  {
    std::lock_guard lock(mutex_);
    if (closed_locked()) return false;
    state_ = ConnectionState::connecting;
  }
  const Clock::time_point deadline = Clock::now() + host_.stream.open_timeout;
  for (;;) {
    Stream::Step step = stream_->open(socket_.fd(), peer_);
    if (step == Stream::Step::failed) {
      std::lock_guard lock(mutex_);
      close_locked({CloseReason::Kind::protocol, 0, stream_->error_detail()});
      return false;
    }
    if (step == Stream::Step::done) {
      if (auto claimed = stream_->claimed_peer()) {
        std::lock_guard lock(mutex_);
        peer_ = *claimed;
      }
      if (stream_->carries_data()) break;
      stream_ = stream_->take_next();
      if (!stream_) break;
      continue;
    }
    short events = step == Stream::Step::want_read ? POLLIN : POLLOUT;
    pollfd fds[2] = {{socket_.fd(), events, 0}, {wake_fd_, POLLIN, 0}};
    int rc = ::poll(fds, 2, timeout_ms(deadline));
    if (rc < 0 && errno != EINTR) {
      std::lock_guard lock(mutex_);
      close_locked(CloseReason::from_errno(errno));
      return false;
    }
    if (rc == 0) {
      std::lock_guard lock(mutex_);
      close_locked({CloseReason::Kind::timeout, ETIMEDOUT,
                    "pre-open stage (handshake or PROXY header) took over " +
                        std::to_string(host_.stream.open_timeout.count()) + " ms"});
      return false;
    }
    if (fds[1].revents & POLLIN) {
      wake_pending_.store(false, std::memory_order_release);
      uint64_t count;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
      if (closed()) return false;  // closed by another thread (server stopping)
    }
  }
  std::lock_guard lock(mutex_);
  if (closed_locked()) return false;
  state_ = ConnectionState::open;
  refresh_state_locked();
  if (stream_) transport_ = stream_->describe();
  return true;
}

bool ThreadConnection::stream_input_pending() const {
  return stream_ && stream_->has_pending_input();
}

bool ThreadConnection::settle() {
  bool high_water_due = false;
  size_t queued = 0;
  {
    std::lock_guard lock(mutex_);
    if (closed_locked()) return false;
    if (fin_requested_ && !fin_sent_ && !output_pending_locked()) {
      if (stream_)
        stream_->shutdown_write(socket_.fd());
      else
        ::shutdown(socket_.fd(), SHUT_WR);
      fin_sent_ = true;
      fin_sent_at_ = Clock::now();
      refresh_state_locked();
    }
    if (fin_sent_ && peer_fin_) {
      close_locked({CloseReason::Kind::finished, 0, graceful_reason_});
      return false;
    }
    high_water_due = std::exchange(high_water_due_, false);
    queued = queued_bytes_locked();
  }
  // The queue may have drained since the mark was crossed: then there is nothing to act on,
  // and pausing anyway would leave a pause that no write completion ever resumes.
  if (high_water_due && queued > host_.high_water_bytes) act_on_high_water(queued);
  return !closed();
}

void ThreadConnection::act_on_high_water(size_t queued) {
  if (host_.service.overflow() == Service::Overflow::pause_reading) {
    pause_reading();
    return;
  }
  // A connection already finishing takes no more output: nothing to evict it for.
  if (fin_requested_or_closed()) return;
  close_gracefully(host_.service.overflow_line(queued),
                   "slow consumer: " + std::to_string(queued) + " bytes queued", host_.evict_grace);
}

ThreadConnection::Interest ThreadConnection::interest() {
  Interest want;
  {
    std::lock_guard lock(mutex_);
    if (!paused_ && !peer_fin_) want.events |= POLLIN;
    if (output_pending_locked()) want.events |= POLLOUT;
    want.deadline = std::min(grace_deadline_, deadline());
  }
  if (!timers_.empty()) want.deadline = std::min(want.deadline, timers_.begin()->first.first);
  if ((want.events & POLLIN) && stream_input_pending()) want.deadline = Clock::now();
  return want;
}

void ThreadConnection::handle_read(short revents) {
  bool paused, discard, peer_fin, tapped;
  {
    std::lock_guard lock(mutex_);
    paused = paused_;
    discard = discard_input_;
    peer_fin = peer_fin_;
    tapped = tap_ != nullptr;
  }
  if (paused && !(revents & POLLHUP)) return;  // paused after poll() began
  if (peer_fin) {
    // POLLHUP after the peer's FIN and before ours: the connection is gone (reset). With
    // output pending, the write reports how; otherwise nothing more can happen on it.
    if (!(revents & POLLOUT)) {
      std::lock_guard lock(mutex_);
      close_locked({CloseReason::Kind::peer_closed, 0, {}});
    }
    return;
  }
  // Into the scratch area when nothing is buffered: a service that consumes everything (the
  // common case) never makes input_ allocate.
  Buffer& scratch = scratch_;
  scratch.ensure_writable(kScratchBytes);
  const size_t room = scratch.writable_bytes();
  const bool into_scratch = input_.empty();
  Buffer& in = into_scratch ? scratch : input_;
  ssize_t n = read_input(socket_.fd(), stream_.get(), scratch, input_);
  if (n > 0) {
    bytes_in_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    note_activity();
    if (tapped) [[unlikely]]
      tap_input(in, static_cast<size_t>(n));
    if (discard)
      in.consume_all();
    else
      host_.service.on_data(host_.server, id_, in);
    // Closed, or a graceful close begun inside on_data: what the service left is dropped.
    if (closed_or_discarding()) {
      scratch.consume_all();
      input_.consume_all();
    }
    if (into_scratch && !scratch.empty()) {
      input_.append(scratch.view());
      scratch.consume_all();
    }
    if (input_.empty()) input_.release_if_empty();
    // A short read means the socket is drained and the connection likely idle: give the
    // scratch area back, so an idle connection holds no buffer memory (a stream keeps it).
    if (static_cast<size_t>(n) < room) scratch.release_if_empty();
    publish_input_memory();
    return;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    CloseReason reason = close_reason_for(errno, stream_.get());
    std::lock_guard lock(mutex_);
    close_locked(std::move(reason));
    return;
  }
  // n == 0: the peer sent FIN. If ours went already, settle() finishes the connection.
  bool tell_service;
  {
    std::lock_guard lock(mutex_);
    peer_fin_ = true;
    refresh_state_locked();
    tell_service = !closed_locked() && !fin_sent_ && !discard_input_;
  }
  if (tell_service) host_.service.on_peer_closed(host_.server, id_);
}

void ThreadConnection::publish_input_memory() noexcept {
  input_memory_.store(input_.capacity() + scratch_.capacity(), std::memory_order_relaxed);
}

bool ThreadConnection::closed_or_discarding() const {
  std::lock_guard lock(mutex_);
  return closed_locked() || discard_input_;
}

void ThreadConnection::handle_write() {
  bool drained = false;
  {
    std::lock_guard lock(mutex_);
    if (closed_locked() || !output_pending_locked()) return;
    Flushed f = flush_output(socket_.fd(), stream_.get(), output_, files_.get());
    if (f.sent) {
      bytes_out_ += f.sent;
      note_activity();
    }
    if (queued_bytes_locked() <= host_.high_water_bytes) high_water_reported_ = false;
    if (f.state == Flushed::State::failed) return close_locked(std::move(f.reason));
    if (f.state == Flushed::State::blocked) return;
    files_.reset();
    output_.release_if_empty();
    drained = true;
  }
  // Write complete: a producer paused at the high-water mark may go on (as the reactor does).
  if (drained && host_.service.overflow() == Service::Overflow::pause_reading) resume_reading();
}

void ThreadConnection::run_due_timers() {
  const Clock::time_point now = Clock::now();
  // Timers started by these timers wait for the next turn, so a zero-delay timer that re-arms
  // itself cannot starve the socket.
  const TimerId limit = next_timer_id_;
  while (!timers_.empty()) {
    auto it = timers_.begin();
    if (it->first.first > now || it->first.second >= limit) return;
    Server::TimerTask fn = std::move(it->second);
    timer_deadlines_.erase(it->first.second);
    timers_.erase(it);
    if (closed()) return;
    fn();
  }
}

ThreadConnection::Clock::time_point ThreadConnection::deadline() const {
  Clock::time_point due = Clock::time_point::max();
  if (host_.timeouts.idle.count() > 0) due = last_active_ + host_.timeouts.idle;
  if (host_.timeouts.half_close.count() > 0 && fin_sent_ && !peer_fin_)
    due = std::min(due, fin_sent_at_ + host_.timeouts.half_close);
  return due;
}

void ThreadConnection::check_deadlines() {
  const auto& t = host_.timeouts;
  if (t.idle.count() == 0 && t.half_close.count() == 0) return;
  const Clock::time_point now = Clock::now();
  std::lock_guard lock(mutex_);
  if (closed_locked()) return;
  if (t.half_close.count() > 0 && fin_sent_ && !peer_fin_ && now >= fin_sent_at_ + t.half_close)
    close_locked({CloseReason::Kind::half_close_timeout, 0,
                  "the peer did not finish within " + std::to_string(t.half_close.count()) +
                      " ms of our FIN"});
  else if (t.idle.count() > 0 && now >= last_active_ + t.idle)
    close_locked({CloseReason::Kind::idle_timeout, 0,
                  "no byte either way for " + std::to_string(t.idle.count()) + " ms"});
}

void ThreadConnection::tap_input(const Buffer& in, size_t n) {
  std::lock_guard lock(mutex_);
  if (tap_) tap_->on_bytes(ConnectionTap::Direction::in, in.view().substr(in.readable_bytes() - n));
}

void ThreadConnection::set_tap(std::unique_ptr<ConnectionTap> tap) {
  std::unique_ptr<ConnectionTap> old;
  {
    std::lock_guard lock(mutex_);
    if (!closed_locked()) {
      old = std::exchange(tap_, std::move(tap));
      if (tap_) tap_->on_installed();
      return;
    }
  }
  if (tap) tap->on_end(close_reason_.to_string());
}

void ThreadConnection::clear_tap(const ConnectionTap* tap) {
  std::unique_ptr<ConnectionTap> old;  // destroyed after the unlock
  std::lock_guard lock(mutex_);
  if (tap_ && tap_.get() == tap) old = std::move(tap_);
}

void ThreadConnection::finish() {
  CloseReason reason;
  std::unique_ptr<ConnectionTap> tap;
  {
    std::lock_guard lock(mutex_);
    reason = close_reason_;
    tap = std::move(tap_);
  }
  if (tap) tap->on_end(reason.to_string());
  socket_.reset();
  input_ = Buffer();
  scratch_ = Buffer();
  publish_input_memory();
  timers_.clear();
  timer_deadlines_.clear();
  if (host_.closed)
    (*host_.closed)[static_cast<size_t>(reason.kind)].fetch_add(1, std::memory_order_relaxed);
  host_.service.on_close(host_.server, id_, reason);
  if (host_.release) host_.release(peer_);
  host_.finished(id_);
}

}  // namespace keel::detail
