#include "keel/net/tcp_connection.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "file_queue.h"
#include "keel/error.h"

namespace keel {
namespace {

// A duration in milliseconds as stored in a connection: at least low, at most ~49 days.
uint32_t clamp_ms(std::chrono::milliseconds d, int64_t low) noexcept {
  return static_cast<uint32_t>(
      std::clamp<int64_t>(d.count(), low, std::numeric_limits<uint32_t>::max() / 2));
}

}  // namespace

const char* to_string(ConnectionState state) noexcept {
  switch (state) {
    case ConnectionState::connecting: return "connecting";
    case ConnectionState::open: return "open";
    case ConnectionState::draining: return "draining";
    case ConnectionState::half_closed: return "half_closed";
    case ConnectionState::closed: return "closed";
  }
  return "?";
}

const char* to_string(CloseReason::Kind kind) noexcept {
  using Kind = CloseReason::Kind;
  switch (kind) {
    case Kind::finished: return "finished";
    case Kind::peer_closed: return "peer_closed";
    case Kind::local: return "local";
    case Kind::reset: return "reset";
    case Kind::error: return "error";
    case Kind::timeout: return "timeout";
    case Kind::protocol: return "protocol";
    case Kind::idle_timeout: return "idle_timeout";
    case Kind::half_close_timeout: return "half_close_timeout";
    case Kind::unreachable: return "unreachable";
  }
  return "?";
}

std::string CloseReason::to_string() const {
  std::string s;
  switch (kind) {
    case Kind::finished: s = "finished"; break;
    case Kind::peer_closed: s = "closed by peer"; break;
    case Kind::local: s = "closed locally"; break;
    case Kind::reset: s = "reset by peer"; break;
    case Kind::error: s = "socket error"; break;
    case Kind::timeout: s = "timed out"; break;
    case Kind::protocol: s = "protocol error"; break;
    case Kind::idle_timeout: s = "idle timeout"; break;
    case Kind::half_close_timeout: s = "half-close timeout"; break;
    case Kind::unreachable: s = "peer unreachable"; break;
  }
  if (error) s += ": " + errno_text(error);
  if (!detail.empty()) s += " (" + detail + ")";
  return s;
}

TcpConnection::TcpConnection(EventLoop& loop, Socket socket, const ConnectionCallbacks& callbacks,
                             size_t high_water_bytes, std::unique_ptr<Stream> stream,
                             std::chrono::milliseconds open_timeout,
                             const ConnectionTimeouts& timeouts)
    : loop_(loop),
      callbacks_(callbacks),
      stream_(std::move(stream)),
      high_water_bytes_(high_water_bytes),
      socket_(std::move(socket)),
      open_timeout_ms_(clamp_ms(open_timeout, 1)),
      idle_timeout_ms_(clamp_ms(timeouts.idle, 0)),
      half_close_timeout_ms_(clamp_ms(timeouts.half_close, 0)) {}

TcpConnection::~TcpConnection() {
  if (watching_ && socket_.valid()) loop_.unwatch(socket_.fd());
}

void TcpConnection::start(ConnectionId id, const Endpoint& peer) {
  loop_.assert_in_loop();
  id_ = id;
  peer_ = peer.family() != AF_UNSPEC ? peer : socket_.peer_endpoint();
  opened_at_ = Clock::now();
  if (stream_ || idle_timeout_ms_) phase_tick_ = last_active_tick_ = loop_.wheel_now();
  if (!stream_) {
    state_ = ConnectionState::open;
    update_interest();
    arm_deadline();
    opened_ = true;
    if (callbacks_.on_open) callbacks_.on_open(*this);
    return;
  }
  state_ = ConnectionState::connecting;
  arm_deadline();
  advance_open();
}

void TcpConnection::advance_open() {
  for (;;) {
    Stream::Step step = stream_->open(socket_.fd(), peer_);
    if (step == Stream::Step::want_read || step == Stream::Step::want_write) {
      uint32_t want = step == Stream::Step::want_read ? EPOLLIN : EPOLLOUT;
      if (!watching_) {
        loop_.watch(socket_.fd(), want, this);
        watching_ = true;
      } else if (want != interest_) {
        if (int err = loop_.rewatch(socket_.fd(), want, this)) return close_unwatchable(err);
      }
      interest_ = want;
      return;
    }
    if (step == Stream::Step::failed) {
      close_with({CloseReason::Kind::protocol, 0, stream_->error_detail()});
      return;
    }
    if (auto claimed = stream_->claimed_peer()) peer_ = *claimed;
    if (stream_->carries_data()) break;
    stream_ = stream_->take_next();
    if (!stream_) break;
  }
  state_ = ConnectionState::open;
  opened_at_ = Clock::now();
  // The idle clock starts at open; the pre-open deadline's entry is now stale.
  last_active_tick_ = loop_.wheel_tick();
  wheel_due_ = 0;
  arm_deadline();
  update_interest();
  opened_ = true;
  if (callbacks_.on_open) callbacks_.on_open(*this);
  // A stream may have read past its stage (TLS records behind the handshake).
  if (state_ != ConnectionState::closed) schedule_pending_read();
}

void TcpConnection::schedule_pending_read() {
  if (!stream_ || !stream_->has_pending_input() || reading_paused_) return;
  loop_.defer([&loop = loop_, id = id_] {
    TcpConnection* c = loop.find(id);
    if (c && c->state_ != ConnectionState::closed && !c->reading_paused_ && !c->peer_fin_)
      c->handle_read();
  });
}

TimerWheel::Tick TcpConnection::deadline_tick() const noexcept {
  if (state_ == ConnectionState::closed) return 0;
  if (state_ == ConnectionState::connecting)
    return EventLoop::deadline_after(phase_tick_, open_timeout_ms_);
  TimerWheel::Tick due = 0;
  if (idle_timeout_ms_) due = EventLoop::deadline_after(last_active_tick_, idle_timeout_ms_);
  if (half_close_timeout_ms_ && fin_sent_ && !peer_fin_) {
    TimerWheel::Tick half = EventLoop::deadline_after(phase_tick_, half_close_timeout_ms_);
    due = due ? std::min(due, half) : half;
  }
  return due;
}

void TcpConnection::arm_deadline() {
  TimerWheel::Tick due = deadline_tick();
  // No deadline, or the live entry comes first (it re-arms for this one when it fires).
  if (due == 0 || (wheel_due_ != 0 && wheel_due_ <= due)) return;
  wheel_due_ = due;
  loop_.arm_deadline(id_, due);
}

void TcpConnection::deadline_reached(TimerWheel::Tick due, TimerWheel::Tick now) {
  if (due != wheel_due_ || state_ == ConnectionState::closed) return;  // a superseded entry
  wheel_due_ = 0;
  if (state_ == ConnectionState::connecting) {
    if (EventLoop::deadline_after(phase_tick_, open_timeout_ms_) <= now)
      return close_with({CloseReason::Kind::timeout, ETIMEDOUT,
                         "pre-open stage (handshake or PROXY header) took over " +
                             std::to_string(open_timeout_ms_) + " ms"});
  } else {
    if (half_close_timeout_ms_ && fin_sent_ && !peer_fin_ &&
        EventLoop::deadline_after(phase_tick_, half_close_timeout_ms_) <= now)
      return close_with({CloseReason::Kind::half_close_timeout, 0,
                         "the peer did not finish within " +
                             std::to_string(half_close_timeout_ms_) + " ms of our FIN"});
    if (idle_timeout_ms_ && EventLoop::deadline_after(last_active_tick_, idle_timeout_ms_) <= now)
      return close_with({CloseReason::Kind::idle_timeout, 0,
                         "no byte either way for " + std::to_string(idle_timeout_ms_) + " ms"});
  }
  arm_deadline();  // activity moved the deadline on
}

void TcpConnection::refresh_state() noexcept {
  if (state_ == ConnectionState::closed || state_ == ConnectionState::connecting) return;
  state_ = state_of_open_connection(peer_fin_, fin_sent_, fin_requested_);
}

void TcpConnection::update_interest() {
  // While connecting, advance_open() watches what the pre-open stage asks for.
  if (state_ == ConnectionState::closed || state_ == ConnectionState::connecting) return;
  uint32_t want = 0;
  if (!reading_paused_ && !peer_fin_) want |= EPOLLIN;
  if (output_pending()) want |= EPOLLOUT;
  if (watching_ && want == interest_) return;
  if (watching_) {
    if (int err = loop_.rewatch(socket_.fd(), want, this)) return close_unwatchable(err);
  } else {
    loop_.watch(socket_.fd(), want, this);
    watching_ = true;
  }
  interest_ = want;
}

void TcpConnection::handle_events(uint32_t events) {
  if (state_ == ConnectionState::closed) return;
  // The stage meets a socket error in its own reads and writes, and names it in its reason
  // ("TLS handshake: Connection reset by peer").
  if (state_ == ConnectionState::connecting) {
    advance_open();
    return;
  }
  if (events & EPOLLERR) {
    int err = socket_.take_error();
    close_with(CloseReason::from_errno(err ? err : EIO));
    return;
  }
  // EPOLLHUP arrives even when reading is paused: read to learn whether it is EOF or an error.
  if (events & (EPOLLIN | EPOLLHUP)) handle_read();
  if ((events & EPOLLOUT) && state_ != ConnectionState::closed) handle_write();
}

CloseReason CloseReason::from_errno(int err) noexcept {
  CloseReason r;
  r.kind = (err == ECONNRESET || err == EPIPE) ? CloseReason::Kind::reset
           : err == ETIMEDOUT                  ? CloseReason::Kind::unreachable
                                               : CloseReason::Kind::error;
  r.error = err;
  return r;
}

void TcpConnection::handle_read() {
  Buffer& scratch = loop_.scratch();
  // With nothing buffered, read into the loop's scratch buffer: a service that consumes
  // everything (the common case) never makes this connection allocate.
  bool into_scratch = input_.empty();
  Buffer& in = into_scratch ? scratch : input_;
  ssize_t n = read_input(socket_.fd(), stream_.get(), scratch, input_);
  if (n > 0) {
    bytes_received_ += static_cast<uint64_t>(n);
    ++reads_;
    note_activity();
    if (tap_) [[unlikely]]  // the new bytes end what in holds
      tap_->on_bytes(ConnectionTap::Direction::in,
                     in.view().substr(in.readable_bytes() - static_cast<size_t>(n)));
    if (discard_input_ || !callbacks_.on_data)
      in.consume_all();
    else
      callbacks_.on_data(*this, in);
    if (state_ == ConnectionState::closed) {
      scratch.consume_all();
      return;
    }
    if (into_scratch && !scratch.empty()) {
      input_.append(scratch.view());
      scratch.consume_all();
    }
    if (input_.empty()) input_.release_if_empty();
    schedule_pending_read();
    return;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    close_with(close_reason_for(errno, stream_.get()));
    return;
  }
  // n == 0: the peer sent FIN.
  peer_fin_ = true;
  refresh_state();
  update_interest();
  if (fin_sent_) {
    close_finished();
  } else if (discard_input_) {
    // Graceful close in progress: our FIN follows once output drains.
  } else if (callbacks_.on_peer_closed) {
    callbacks_.on_peer_closed(*this);
  } else {
    shutdown();
  }
}

bool TcpConnection::output_pending() const noexcept {
  return !output_.empty() || (files_ && !files_->empty());
}

size_t TcpConnection::queued_output_bytes() const noexcept {
  return output_.readable_bytes() + (files_ ? files_->after_bytes() : 0);
}

uint64_t TcpConnection::queued_file_bytes() const noexcept {
  return files_ ? files_->file_bytes() : 0;
}

size_t TcpConnection::buffer_memory_bytes() const noexcept {
  return input_.capacity() + output_.capacity() + (files_ ? files_->after_bytes() : 0);
}

void TcpConnection::handle_write() {
  if (!output_pending()) {
    update_interest();
    return;
  }
  Flushed f = flush_output(socket_.fd(), stream_.get(), output_, files_.get());
  if (f.sent) {
    bytes_sent_ += f.sent;
    note_activity();
  }
  if (queued_output_bytes() <= high_water_bytes_) high_water_reported_ = false;
  if (f.state == Flushed::State::failed) return close_with(std::move(f.reason));
  if (f.state == Flushed::State::blocked) return;
  files_.reset();
  output_.release_if_empty();
  update_interest();
  if (callbacks_.on_write_complete) callbacks_.on_write_complete(*this);
  if (fin_requested_ && !fin_sent_ && state_ != ConnectionState::closed && !output_pending())
    send_fin();
}

bool TcpConnection::send(std::string_view bytes) {
  loop_.assert_in_loop();
  // Before open nobody (service or operator) has been told of this connection.
  if (state_ == ConnectionState::closed || state_ == ConnectionState::connecting || fin_requested_)
    return false;
  ++sends_;
  if (tap_) [[unlikely]]
    tap_->on_bytes(ConnectionTap::Direction::out, bytes);
  if (files_ && files_->append_after(bytes)) [[unlikely]] {
    note_high_water();
    return true;
  }
  const char* data = bytes.data();
  size_t left = bytes.size();
  if (output_.empty() && left > 0) {
    ssize_t n = write_output(socket_.fd(), stream_.get(), data, left);
    if (n >= 0) {
      bytes_sent_ += static_cast<uint64_t>(n);
      if (n > 0) note_activity();
      data += n;
      left -= static_cast<size_t>(n);
    } else if (errno != EAGAIN && errno != EINTR) {
      close_with(close_reason_for(errno, stream_.get()));
      return false;
    }
  }
  if (left == 0) return true;
  output_.append(data, left);
  update_interest();
  note_high_water();
  return true;
}

void TcpConnection::note_high_water() {
  if (queued_output_bytes() > high_water_bytes_ && !high_water_reported_) {
    high_water_reported_ = true;
    if (callbacks_.on_high_water) {
      loop_.defer([&loop = loop_, id = id_] {
        TcpConnection* c = loop.find(id);
        // The queue may have drained since (same turn): then there is nothing to report, and
        // reporting anyway would make a service pause a connection that never resumes.
        if (c && c->state_ != ConnectionState::closed && !c->silenced_ &&
            c->queued_output_bytes() > c->high_water_bytes_ && c->callbacks_.on_high_water)
          c->callbacks_.on_high_water(*c, c->queued_output_bytes());
      });
    }
  }
}

bool TcpConnection::send_file(FileRegion region) {
  loop_.assert_in_loop();
  if (state_ == ConnectionState::closed || state_ == ConnectionState::connecting || fin_requested_)
    return false;
  ++sends_;
  if (region.length == 0) return true;
  if (!files_) files_ = std::make_unique<FileQueue>();
  files_->push(std::move(region));
  update_interest();
  return true;
}

bool TcpConnection::send(Buffer& bytes) {
  bool ok = send(bytes.view());
  bytes.consume_all();
  return ok;
}

void TcpConnection::shutdown() {
  loop_.assert_in_loop();
  if (state_ == ConnectionState::connecting) return force_close("shut down before it opened");
  if (state_ == ConnectionState::closed || fin_requested_) return;
  fin_requested_ = true;
  refresh_state();
  if (!output_pending()) send_fin();
}

void TcpConnection::send_fin() {
  if (stream_)
    stream_->shutdown_write(socket_.fd());
  else
    ::shutdown(socket_.fd(), SHUT_WR);
  fin_sent_ = true;
  refresh_state();
  if (peer_fin_) return close_finished();
  if (half_close_timeout_ms_) {
    phase_tick_ = loop_.wheel_now();
    arm_deadline();
  }
}

void TcpConnection::close_gracefully(std::string_view reason) {
  loop_.assert_in_loop();
  if (state_ == ConnectionState::closed) return;
  // Nothing to drain before open: the service never saw it.
  if (state_ == ConnectionState::connecting) return force_close(reason);
  close_detail_ = std::make_unique<std::string>(reason);
  discard_input_ = true;
  input_.consume_all();
  input_.release_if_empty();
  // Keep reading (and discarding) so the peer's FIN is seen.
  reading_paused_ = false;
  update_interest();
  shutdown();
}

void TcpConnection::force_close(std::string_view reason) {
  loop_.assert_in_loop();
  close_with({CloseReason::Kind::local, 0, std::string(reason)});
}

void TcpConnection::close_silently() {
  loop_.assert_in_loop();
  silenced_ = true;
  if (state_ == ConnectionState::closed) return;  // the pending close task retires it
  if (tap_) end_tap("closed locally (owner going away)");
  stop_io();
  loop_.retire(id_);
}

void TcpConnection::stop_io() {
  state_ = ConnectionState::closed;
  loop_.mark_closing(id_);
  if (watching_) {
    loop_.unwatch(socket_.fd());
    watching_ = false;
  }
  // Close the descriptor now: pending output is dropped (for force_close that is the point;
  // on the graceful paths output is already empty).
  socket_.reset();
}

void TcpConnection::pause_reading() {
  loop_.assert_in_loop();
  if (reading_paused_ || discard_input_) return;
  reading_paused_ = true;
  update_interest();
}

void TcpConnection::resume_reading() {
  loop_.assert_in_loop();
  if (!reading_paused_) return;
  reading_paused_ = false;
  update_interest();
  schedule_pending_read();
}

void TcpConnection::close_finished() {
  close_with({CloseReason::Kind::finished, 0, close_detail_ ? *close_detail_ : std::string()});
}

void TcpConnection::close_unwatchable(int err) {
  // The loop would never report this socket's events again: close it instead of stranding it.
  close_with({CloseReason::Kind::error, err, "epoll_ctl modify"});
}

void TcpConnection::set_tap(std::unique_ptr<ConnectionTap> tap) {
  loop_.assert_in_loop();
  tap_ = std::move(tap);
  if (!tap_) return;
  if (state_ == ConnectionState::closed) return end_tap("closed");
  tap_->on_installed();
}

void TcpConnection::clear_tap(const ConnectionTap* tap) noexcept {
  if (tap_ && tap_.get() == tap) tap_.reset();
}

void TcpConnection::end_tap(const std::string& why) noexcept {
  std::unique_ptr<ConnectionTap> tap = std::move(tap_);
  tap->on_end(why);
}

void TcpConnection::close_with(CloseReason reason) {
  if (state_ == ConnectionState::closed) return;
  if (tap_) end_tap(reason.to_string());
  stop_io();
  input_ = Buffer();
  output_ = Buffer();
  files_.reset();
  loop_.defer([&loop = loop_, id = id_, reason = std::move(reason)] {
    TcpConnection* c = loop.find(id);
    if (!c) return;
    if (!c->silenced_ && c->callbacks_.on_close) c->callbacks_.on_close(*c, reason);
    loop.retire(id);
  });
}

}  // namespace keel
