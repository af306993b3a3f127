#include "keel/net/tcp_connection.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
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

// A byte count as stored in a connection: at most 4 GiB - 1.
uint32_t clamp_bytes(size_t n) noexcept {
  return static_cast<uint32_t>(std::min<size_t>(n, std::numeric_limits<uint32_t>::max()));
}

}  // namespace

// An idle connection's cost (docs/architecture.md, "Memory per idle connection"): 152 bytes is
// a 160-byte malloc chunk. Grow it only with a measurement and that page updated.
static_assert(sizeof(void*) != 8 || sizeof(TcpConnection) <= 152);

struct TcpConnection::Cold {
  Buffer input;
  Buffer output;
  std::unique_ptr<FileQueue> files;           // null unless a file region is queued
  std::unique_ptr<ConnectionTap> tap;         // null unless an operator watches
  std::unique_ptr<Endpoint> long_peer;        // a peer the inline fields cannot hold (a Unix path)
  std::unique_ptr<std::string> close_detail;  // why close_gracefully() was called
  // Completion receive: bytes at the end of input that came while reading was paused (read by
  // the kernel before the pause reached it, at most one buffer); on_data has not seen them.
  size_t unread = 0;

  bool empty() const noexcept {
    return input.capacity() == 0 && output.capacity() == 0 && !files && !tap && !long_peer &&
           !close_detail;
  }
};

TcpConnection::Cold& TcpConnection::cold() {
  if (!cold_) cold_ = std::make_unique<Cold>();
  return *cold_;
}

void TcpConnection::release_cold_if_empty() noexcept {
  if (cold_ && cold_->empty()) cold_.reset();
}

Buffer* TcpConnection::input_buffer() const noexcept {
  return cold_ ? &cold_->input : nullptr;
}
ConnectionTap* TcpConnection::tap() const noexcept {
  return cold_ ? cold_->tap.get() : nullptr;
}
FileQueue* TcpConnection::files() const noexcept {
  return cold_ ? cold_->files.get() : nullptr;
}

void TcpConnection::set_peer(const Endpoint& peer) {
  const sockaddr* sa = peer.sockaddr_ptr();
  peer_scope_ = 0;
  if (peer.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(peer_addr_, &in->sin_addr, sizeof in->sin_addr);
    peer_port_ = in->sin_port;
  } else if (peer.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(peer_addr_, &in6->sin6_addr, sizeof in6->sin6_addr);
    peer_port_ = in6->sin6_port;
    peer_scope_ = in6->sin6_scope_id;
  } else if (!(peer.family() == AF_UNIX && peer.sockaddr_len() <= sizeof(sa_family_t)) &&
             peer.family() != AF_UNSPEC) {
    cold().long_peer = std::make_unique<Endpoint>(peer);
    peer_family_ = AF_UNSPEC;
    return;
  }
  if (cold_) cold_->long_peer.reset();
  peer_family_ = static_cast<uint16_t>(peer.family());
}

Endpoint TcpConnection::peer() const {
  if (cold_ && cold_->long_peer) return *cold_->long_peer;
  if (peer_family_ == AF_INET) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = peer_port_;
    std::memcpy(&in.sin_addr, peer_addr_, sizeof in.sin_addr);
    return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&in), sizeof in);
  }
  if (peer_family_ == AF_INET6) {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = peer_port_;
    in6.sin6_scope_id = peer_scope_;
    std::memcpy(&in6.sin6_addr, peer_addr_, sizeof in6.sin6_addr);
    return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&in6), sizeof in6);
  }
  if (peer_family_ == AF_UNIX) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&un), sizeof(sa_family_t));
  }
  return Endpoint();
}

void TcpConnection::set_high_water_bytes(size_t bytes) noexcept {
  high_water_bytes_ = clamp_bytes(bytes);
}

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
      high_water_bytes_(clamp_bytes(high_water_bytes)),
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
  set_peer(peer.family() != AF_UNSPEC ? peer : socket_.peer_endpoint());
  opened_tick_ = loop_.wheel_now();
  if (stream_ || idle_timeout_ms_) phase_tick_ = last_active_tick_ = opened_tick_;
  if (!stream_) {
    state_ = ConnectionState::open;
    // A stream (TLS, PROXY) reads the socket itself: those stay on readiness.
    completion_ = loop_.receives_completions();
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
    Stream::Step step = stream_->open(socket_.fd(), peer());
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
    if (auto claimed = stream_->claimed_peer()) set_peer(*claimed);
    if (stream_->carries_data()) break;
    stream_ = stream_->take_next();
    if (!stream_) break;
  }
  state_ = ConnectionState::open;
  opened_tick_ = loop_.wheel_now();
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
  if (reading_paused_) return;
  if (cold_ && cold_->unread) {
    loop_.defer([&loop = loop_, id = id_] {
      TcpConnection* c = loop.find(id);
      if (c && c->state_ != ConnectionState::closed && !c->reading_paused_) c->deliver_unread();
    });
    return;
  }
  if (!stream_ || !stream_->has_pending_input()) return;
  loop_.defer([&loop = loop_, id = id_] {
    TcpConnection* c = loop.find(id);
    if (c && c->state_ != ConnectionState::closed && !c->reading_paused_ && !c->peer_fin_)
      c->handle_read();
  });
}

void TcpConnection::deliver_unread() {
  if (!cold_ || !cold_->unread) return;
  const size_t n = std::exchange(cold_->unread, 0);
  take_input(cold_->input, false, n);
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
  const bool read = !reading_paused_ && !peer_fin_;
  uint32_t want = 0;
  if (read && !completion_) want |= EPOLLIN;
  if (output_pending()) want |= EPOLLOUT;
  if (!watching_ || want != interest_) {
    if (watching_) {
      if (int err = loop_.rewatch(socket_.fd(), want, this)) return close_unwatchable(err);
    } else {
      loop_.watch(socket_.fd(), want, this);
      watching_ = true;
    }
    interest_ = want;
  }
  if (completion_ && read != receiving_) {
    if (read) return start_receiving();
    loop_.stop_receive(socket_.fd());
    receiving_ = false;
  }
}

void TcpConnection::start_receiving() {
  if (int err = loop_.receive(socket_.fd()))
    return close_with({CloseReason::Kind::error, err, "io_uring receive"});
  receiving_ = true;
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
  if (completion_) {
    // Bytes, the FIN and errors come by completion. A hang-up while not receiving (paused)
    // would be reported again every turn: receive, to learn whether it is EOF or an error.
    if ((events & EPOLLHUP) && !receiving_ && !peer_fin_) start_receiving();
  } else if (events & (EPOLLIN | EPOLLHUP)) {
    // EPOLLHUP arrives even when reading is paused: read to learn whether it is EOF or an error.
    handle_read();
  }
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
  Buffer* input = input_buffer();
  bool into_scratch = !input || input->empty();
  Buffer& in = into_scratch ? scratch : *input;
  // scratch is empty between uses, so as read_input's input it makes the read land in scratch.
  ssize_t n = read_input(socket_.fd(), stream_.get(), scratch, in);
  if (n > 0) return take_input(in, into_scratch, static_cast<size_t>(n));
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    close_with(close_reason_for(errno, stream_.get()));
    return;
  }
  peer_closed();
}

void TcpConnection::handle_received(const char* data, int result) {
  if (state_ == ConnectionState::closed) return;
  if (result > 0) {
    if (reading_paused_) {
      // Read by the kernel before the pause reached it: kept, and given to on_data once
      // reading resumes, so that a paused connection is not read (one buffer at most).
      Cold& c = cold();
      c.input.append(data, static_cast<size_t>(result));
      c.unread += static_cast<size_t>(result);
      return;
    }
    // As handle_read: into scratch unless bytes are buffered already.
    Buffer* input = input_buffer();
    bool into_scratch = !input || input->empty();
    Buffer& in = into_scratch ? loop_.scratch() : *input;
    in.append(data, static_cast<size_t>(result));
    // Bytes kept during a pause that ended this turn are new to on_data too (they come first).
    const size_t unread = into_scratch ? 0 : std::exchange(cold_->unread, 0);
    return take_input(in, into_scratch, unread + static_cast<size_t>(result));
  }
  if (result == -ENOBUFS) {
    // The loop's buffers ran out this turn: read what waits with a plain read, as readiness does
    // (nothing else reads this socket now), and the receive goes on.
    if (!reading_paused_ && !peer_fin_) handle_read();
    return;
  }
  receiving_ = false;  // the receive ended with this
  if (result == 0) {
    // What came before the FIN goes first, paused or not (the stream has ended).
    deliver_unread();
    if (state_ == ConnectionState::closed || peer_fin_) return;
    return peer_closed();
  }
  close_with(close_reason_for(-result, nullptr));
}

void TcpConnection::take_input(Buffer& in, bool into_scratch, size_t n) {
  Buffer& scratch = loop_.scratch();
  bytes_received_ += n;
  ++reads_;
  note_activity();
  if (ConnectionTap* t = tap()) [[unlikely]]  // the new bytes end what in holds
    t->on_bytes(ConnectionTap::Direction::in, in.view().substr(in.readable_bytes() - n));
  if (discard_input_ || !callbacks_.on_data)
    in.consume_all();
  else
    callbacks_.on_data(*this, in);
  if (state_ == ConnectionState::closed) {
    scratch.consume_all();
    return;
  }
  if (into_scratch && !scratch.empty()) {
    cold().input.append(scratch.view());
    scratch.consume_all();
  }
  if (cold_ && cold_->input.empty()) {
    cold_->input.release_if_empty();
    release_cold_if_empty();
  }
  schedule_pending_read();
}

void TcpConnection::peer_closed() {
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
  return cold_ && (!cold_->output.empty() || (cold_->files && !cold_->files->empty()));
}

size_t TcpConnection::queued_output_bytes() const noexcept {
  if (!cold_) return 0;
  return cold_->output.readable_bytes() + (cold_->files ? cold_->files->after_bytes() : 0);
}

uint64_t TcpConnection::queued_file_bytes() const noexcept {
  FileQueue* f = files();
  return f ? f->file_bytes() : 0;
}

size_t TcpConnection::buffer_memory_bytes() const noexcept {
  if (!cold_) return 0;
  return cold_->input.capacity() + cold_->output.capacity() +
         (cold_->files ? cold_->files->after_bytes() : 0);
}

void TcpConnection::handle_write() {
  if (!output_pending()) {
    update_interest();
    return;
  }
  Flushed f = flush_output(socket_.fd(), stream_.get(), cold_->output, cold_->files.get());
  if (f.sent) {
    bytes_sent_ += f.sent;
    note_activity();
  }
  if (queued_output_bytes() <= high_water_bytes_) high_water_reported_ = false;
  if (f.state == Flushed::State::failed) return close_with(std::move(f.reason));
  if (f.state == Flushed::State::blocked) return;
  cold_->files.reset();
  cold_->output.release_if_empty();
  release_cold_if_empty();
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
  if (ConnectionTap* t = tap()) [[unlikely]]
    t->on_bytes(ConnectionTap::Direction::out, bytes);
  if (FileQueue* f = files(); f && f->append_after(bytes)) [[unlikely]] {
    note_high_water();
    return true;
  }
  const char* data = bytes.data();
  size_t left = bytes.size();
  if ((!cold_ || cold_->output.empty()) && left > 0) {
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
  cold().output.append(data, left);
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
  Cold& c = cold();
  if (!c.files) c.files = std::make_unique<FileQueue>();
  c.files->push(std::move(region));
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
  Cold& c = cold();
  c.close_detail = std::make_unique<std::string>(reason);
  discard_input_ = true;
  c.unread = 0;
  c.input.consume_all();
  c.input.release_if_empty();
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
  if (tap()) end_tap("closed locally (owner going away)");
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
  close_with({CloseReason::Kind::finished, 0,
              cold_ && cold_->close_detail ? *cold_->close_detail : std::string()});
}

void TcpConnection::close_unwatchable(int err) {
  // The loop would never report this socket's events again: close it instead of stranding it.
  close_with({CloseReason::Kind::error, err, "epoll_ctl modify"});
}

void TcpConnection::set_tap(std::unique_ptr<ConnectionTap> tap) {
  loop_.assert_in_loop();
  if (!tap) {
    if (cold_) cold_->tap.reset();
    return release_cold_if_empty();
  }
  cold().tap = std::move(tap);
  if (state_ == ConnectionState::closed) return end_tap("closed");
  cold_->tap->on_installed();
}

void TcpConnection::clear_tap(const ConnectionTap* tap) noexcept {
  if (cold_ && cold_->tap && cold_->tap.get() == tap) {
    cold_->tap.reset();
    release_cold_if_empty();
  }
}

void TcpConnection::end_tap(const std::string& why) noexcept {
  std::unique_ptr<ConnectionTap> tap = std::move(cold_->tap);
  tap->on_end(why);
}

void TcpConnection::close_with(CloseReason reason) {
  if (state_ == ConnectionState::closed) return;
  if (tap()) end_tap(reason.to_string());
  stop_io();
  if (cold_) {
    cold_->input = Buffer();
    cold_->output = Buffer();
    cold_->files.reset();
  }
  loop_.defer([&loop = loop_, id = id_, reason = std::move(reason)] {
    TcpConnection* c = loop.find(id);
    if (!c) return;
    if (!c->silenced_ && c->callbacks_.on_close) c->callbacks_.on_close(*c, reason);
    loop.retire(id);
  });
}

}  // namespace keel
