// TcpConnection: one established stream (TCP or Unix) living on one EventLoop.
// Thread safety: every method is loop-thread only. From other threads, name the connection by its
// ConnectionId and use EventLoop/LoopPool/TcpServer::send, shutdown and close.
#pragma once

#include <errno.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "keel/net/buffer.h"
#include "keel/net/connection_id.h"
#include "keel/net/connection_tap.h"
#include "keel/net/endpoint.h"
#include "keel/net/event_loop.h"
#include "keel/net/file_region.h"
#include "keel/net/socket.h"
#include "keel/net/stream.h"
#include "keel/net/timer_wheel.h"

namespace keel {

class TcpConnection;
class FileQueue;

enum class ConnectionState : uint8_t {
  connecting,   // not yet open: TCP connect in progress (TcpClient) or the stream's pre-open
                // stage (TLS handshake, PROXY header); the service has not seen it
  open,         // both directions open
  draining,     // shutdown() asked for: FIN goes once the output buffer is empty
  half_closed,  // one direction finished (peer sent FIN, or we did)
  closed,
};
const char* to_string(ConnectionState state) noexcept;
// The state of a connection that is not closed, from where its FINs stand. Every engine's
// connection derives its state this way.
constexpr ConnectionState state_of_open_connection(bool peer_fin, bool fin_sent,
                                                   bool fin_requested) noexcept {
  if (peer_fin || fin_sent) return ConnectionState::half_closed;
  return fin_requested ? ConnectionState::draining : ConnectionState::open;
}

struct CloseReason {
  enum class Kind {
    finished,            // both sides sent FIN; every byte delivered
    peer_closed,         // the peer closed while we still had a direction open
    local,               // closed by this process (force_close, kick, server stop)
    reset,               // ECONNRESET / EPIPE
    error,               // any other socket error
    timeout,             // a deadline (connect, drain, handshake) ran out
    protocol,            // the peer broke the stream's protocol (TLS alert, bad PROXY header)
    idle_timeout,        // no byte either way for the idle timeout
    half_close_timeout,  // the peer did not finish within the half-close timeout of our FIN
    unreachable,         // ETIMEDOUT: keepalive probes or retransmissions went unanswered
  };
  static constexpr size_t kKinds = 10;
  Kind kind = Kind::finished;
  int error = 0;       // errno when there is one
  std::string detail;  // "server stopping", "output over high-water mark", ...

  bool clean() const noexcept { return kind == Kind::finished || kind == Kind::peer_closed; }
  // A failed socket call's errno as a reason: reset (ECONNRESET, EPIPE), unreachable (ETIMEDOUT)
  // or error. Every engine maps errors this way.
  static CloseReason from_errno(int err) noexcept;
  std::string to_string() const;
};
// "idle_timeout": a kind's name in stats and JSON.
const char* to_string(CloseReason::Kind kind) noexcept;

// Deadlines an owner gives its connections (on the loop's timer wheel, so arming and refreshing
// them costs next to nothing). Zero is "none".
struct ConnectionTimeouts {
  // No byte read or written for this long closes the connection (Kind::idle_timeout).
  std::chrono::milliseconds idle{0};
  // Once our FIN is sent, the peer's must follow within this (Kind::half_close_timeout).
  std::chrono::milliseconds half_close{0};
};

// A connection's I/O as every engine does it: through its stream when it has one, plain socket
// calls when stream is null.
// read_input: one read. With input empty it reads into scratch (a service that consumes
// everything never makes the connection allocate), else into input with scratch as overflow;
// the bytes are in scratch if input was empty, else in input. Returns what read returned.
inline ssize_t read_input(int fd, Stream* stream, Buffer& scratch, Buffer& input) {
  if (!stream)
    return input.empty() ? scratch.read_from(fd, nullptr, 0)
                         : input.read_from(fd, scratch.write_ptr(), scratch.writable_bytes());
  Buffer& in = input.empty() ? scratch : input;
  in.ensure_writable(32 * 1024);  // a whole TLS record (16 KiB) and then some
  ssize_t n = stream->read(fd, in.write_ptr(), in.writable_bytes());
  if (n > 0) in.commit(static_cast<size_t>(n));
  return n;
}
// Like send(2) with MSG_NOSIGNAL.
inline ssize_t write_output(int fd, Stream* stream, const char* data, size_t len) {
  return stream ? stream->write(fd, data, len) : ::send(fd, data, len, MSG_NOSIGNAL);
}
// A failed read or write as a close reason: a stream's EPROTO is its protocol error.
inline CloseReason close_reason_for(int err, const Stream* stream) {
  if (stream && err == EPROTO) return {CloseReason::Kind::protocol, 0, stream->error_detail()};
  return CloseReason::from_errno(err);
}

// What flush_output did.
struct Flushed {
  enum class State : uint8_t {
    done,     // everything is out (files is empty)
    blocked,  // the socket is full, or this turn's file slice is spent: wait for writability
    failed,   // a call failed: close with reason
  };
  State state = State::done;
  uint64_t sent = 0;  // bytes that reached the socket (or the stream)
  CloseReason reason;
};
// Writes output, then the file regions queued in files (may be null), until one of Flushed's
// states. Every engine's connection flushes this way.
Flushed flush_output(int fd, Stream* stream, Buffer& output, FileQueue* files);

// What an owner (server, client) wants to hear about its connections. Shared by all of an
// owner's connections; the owner must outlive them. Every callback runs on the connection's loop.
struct ConnectionCallbacks {
  std::function<void(TcpConnection&)> on_open;
  // in holds everything received and not yet consumed; consume what you use.
  std::function<void(TcpConnection&, Buffer& in)> on_data;
  // The peer sent FIN. Default when unset: shutdown() (finish our side once output drains).
  std::function<void(TcpConnection&)> on_peer_closed;
  // The output buffer became empty after having held bytes.
  std::function<void(TcpConnection&)> on_write_complete;
  // Output went above the high-water mark; reported on a later turn of the loop.
  std::function<void(TcpConnection&, size_t queued_bytes)> on_high_water;
  // Every started connection ends here, also one whose pre-open stage failed before on_open
  // (TcpConnection::was_opened() tells them apart).
  std::function<void(TcpConnection&, const CloseReason&)> on_close;
};

class TcpConnection final : private IoHandler {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes an established non-blocking socket. With a stream, the connection's bytes pass
  // through it and its pre-open stage runs (within open_timeout) before on_open.
  TcpConnection(EventLoop& loop, Socket socket, const ConnectionCallbacks& callbacks,
                size_t high_water_bytes, std::unique_ptr<Stream> stream = nullptr,
                std::chrono::milliseconds open_timeout = std::chrono::milliseconds(10000),
                const ConnectionTimeouts& timeouts = {});
  ~TcpConnection();
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // Registers with the loop, runs the stream's pre-open stage if there is one, then reports
  // on_open. Called once by the owner after add_connection. peer: the address accept4
  // reported, if known (it survives a client that reset the connection at once; unset: ask
  // the socket).
  void start(ConnectionId id, const Endpoint& peer = Endpoint());
  // Whether on_open was reported (false for a connection closed in its pre-open stage).
  bool was_opened() const noexcept { return opened_; }

  ConnectionId id() const noexcept { return id_; }
  EventLoop& loop() const noexcept { return loop_; }
  ConnectionState state() const noexcept { return state_; }
  // The client's address: the socket's peer, or the one a PROXY header named.
  Endpoint peer() const;
  // What carries the bytes, for operators ("TLSv1.3 TLS_AES_256_GCM_SHA384"); empty for plain.
  std::string transport() const { return stream_ ? stream_->describe() : std::string(); }
  // Asks the socket (getsockname): not stored, to keep idle connections small.
  Endpoint local() const { return socket_.local_endpoint(); }
  int fd() const noexcept { return socket_.fd(); }

  // Writes now if nothing is queued; queues the rest and waits for EPOLLOUT. Returns false (and
  // drops the bytes) when the connection can no longer send (shutdown asked for, or closed).
  bool send(std::string_view bytes);
  bool send(Buffer& bytes);  // sends and consumes all of bytes
  // Queues region to go out after what is queued now (sendfile on a plain socket; read and
  // written in slices through a stream). Starts on the next write turn. A file that ends
  // before the region does closes the connection with an error. Same false as send().
  bool send_file(FileRegion region);

  // Sends FIN once the output buffer is empty; reading continues until the peer's FIN.
  void shutdown();
  // shutdown(), stop delivering input (it is discarded) and close at the peer's FIN.
  // Used to drain a connection on server stop.
  void close_gracefully(std::string_view reason);
  // Closes now; queued output is dropped. on_close gets Kind::local with reason.
  void force_close(std::string_view reason);
  // For an owner that is going away: closes now and never calls a callback again.
  void close_silently();

  // The loop's timer wheel reached this connection's entry due at tick due (now: the wheel's
  // tick). Closes it if a deadline has passed, else re-arms for the nearest one.
  void deadline_reached(TimerWheel::Tick due, TimerWheel::Tick now);

  void pause_reading();
  void resume_reading();
  bool reading_paused() const noexcept { return reading_paused_; }

  // At most 4 GiB - 1 (larger values are clamped).
  void set_high_water_bytes(size_t bytes) noexcept;
  size_t high_water_bytes() const noexcept { return high_water_bytes_; }
  // Queued bytes held in memory (a queued file region holds none).
  size_t queued_output_bytes() const noexcept;
  // File bytes queued by send_file and not sent yet.
  uint64_t queued_file_bytes() const noexcept;
  // Bytes of buffer memory held (input + output), for memory accounting.
  size_t buffer_memory_bytes() const noexcept;
  uint64_t bytes_received() const noexcept { return bytes_received_; }
  uint64_t bytes_sent() const noexcept { return bytes_sent_; }
  // Reads that delivered bytes, and send() calls that were accepted: a service's "messages"
  // unless it counts its own (OperatorHooks::message_counts).
  uint64_t reads() const noexcept { return reads_; }
  uint64_t sends() const noexcept { return sends_; }
  // To the loop's wheel tick (50 ms).
  Clock::time_point opened_at() const noexcept { return loop_.time_of_tick(opened_tick_); }

  // The callbacks this connection reports to: tells owners which connections are theirs.
  const ConnectionCallbacks& callbacks() const noexcept { return callbacks_; }

  // keel ctl watch (keel/net/connection_tap.h): copies of what this connection reads and is
  // sent go to tap, then on_end once it closes (at once if it has closed already). Replaces
  // (drops unheard) a tap set before. clear_tap removes tap if it is still the one set.
  void set_tap(std::unique_ptr<ConnectionTap> tap);
  void clear_tap(const ConnectionTap* tap) noexcept;

  // An owner-defined tag (the server that accepted it, a service's slot, ...).
  void set_user_tag(uint64_t tag) noexcept { user_tag_ = tag; }
  uint64_t user_tag() const noexcept { return user_tag_; }

 private:
  void handle_events(uint32_t events) override;
  void handle_received(const char* data, int result) override;
  // Runs the pre-open stage as far as the socket allows; opens the connection when it is done.
  void advance_open();
  void handle_read();
  // n new bytes ended `in` (the loop's scratch buffer when into_scratch): on_data, and what it
  // leaves is kept.
  void take_input(Buffer& in, bool into_scratch, size_t n);
  // The peer's FIN was read.
  void peer_closed();
  // Completion receive: the bytes that came while reading was paused go to on_data.
  void deliver_unread();
  // Completion receive: asks the loop to receive; a refusal closes the connection.
  void start_receiving();
  // The stream holds input the socket will not signal: read it on a later turn.
  void schedule_pending_read();
  void handle_write();
  // Output passed the high-water mark: reported (once) on a later turn.
  void note_high_water();
  // Anything waiting to be written: the output buffer or a queued file region.
  bool output_pending() const noexcept;
  void update_interest();
  void send_fin();
  // The one way a connection ends: stop I/O now, report on_close and retire at the end of the
  // turn (so on_close never runs inside the call that caused it).
  void close_with(CloseReason reason);
  // A failed rewatch (err: its errno) closes the connection with an error reason naming it.
  void close_unwatchable(int err);
  // Both FINs have passed: every byte was delivered.
  void close_finished();
  // closed, id stale for other threads, unwatched, descriptor closed.
  void stop_io();
  void refresh_state() noexcept;
  // The tick of the nearest deadline in the current state (pre-open, idle, half-close); 0: none.
  TimerWheel::Tick deadline_tick() const noexcept;
  // Makes sure the wheel holds an entry at or before deadline_tick().
  void arm_deadline();
  // The tap's end: on_end with why, then the tap is gone.
  void end_tap(const std::string& why) noexcept;
  // A byte went either way: the idle deadline moves (a store; the wheel catches up lazily).
  void note_activity() noexcept {
    if (idle_timeout_ms_) last_active_tick_ = loop_.wheel_tick();
  }

  // What an idle plain connection does not need (buffers, a queued file, a tap, a long peer
  // address, the graceful-close reason): allocated on first use, freed once empty again.
  struct Cold;
  Cold& cold();
  void release_cold_if_empty() noexcept;
  Buffer* input_buffer() const noexcept;
  ConnectionTap* tap() const noexcept;
  FileQueue* files() const noexcept;
  void set_peer(const Endpoint& peer);

  // This object is most of an idle connection's cost (docs/architecture.md, "Memory per idle
  // connection"): ordered largest first to keep padding out, at most 152 bytes so that with
  // malloc's header it takes a 160-byte chunk. Rarely used parts live in cold_.
  EventLoop& loop_;
  const ConnectionCallbacks& callbacks_;
  std::unique_ptr<Stream> stream_;  // null: plain socket I/O
  std::unique_ptr<Cold> cold_;      // null while there is nothing in it
  ConnectionId id_;
  uint64_t bytes_received_ = 0;
  uint64_t bytes_sent_ = 0;
  uint64_t reads_ = 0;
  uint64_t sends_ = 0;
  uint64_t user_tag_ = 0;
  // The peer when it is an IP address (or an unnamed Unix socket): the address, port (network
  // order) and IPv6 scope; any other address is kept in cold_. IPv6 flow labels are not kept.
  unsigned char peer_addr_[16] = {};
  uint32_t peer_scope_ = 0;
  uint16_t peer_port_ = 0;
  uint16_t peer_family_ = AF_UNSPEC;  // AF_UNIX with an empty path; AF_UNSPEC: see cold_
  uint32_t high_water_bytes_;
  Socket socket_;
  uint32_t open_timeout_ms_;
  uint32_t idle_timeout_ms_;
  uint32_t half_close_timeout_ms_;
  TimerWheel::Tick opened_tick_ = 0;       // on_open (or start), to one wheel tick
  TimerWheel::Tick last_active_tick_ = 0;  // a byte went either way (only with an idle timeout)
  TimerWheel::Tick phase_tick_ = 0;        // the pre-open stage began, or our FIN went
  TimerWheel::Tick wheel_due_ = 0;         // the live wheel entry's tick; 0: none
  ConnectionState state_ = ConnectionState::open;
  uint8_t interest_ = 0;  // EPOLLIN | EPOLLOUT as last given to the loop
  bool watching_ : 1 = false;
  bool reading_paused_ : 1 = false;
  bool peer_fin_ : 1 = false;       // read returned 0
  bool fin_requested_ : 1 = false;  // shutdown() asked for
  bool fin_sent_ : 1 = false;
  bool discard_input_ : 1 = false;
  bool high_water_reported_ : 1 = false;
  bool silenced_ : 1 = false;  // close_silently(): callbacks_ may be gone
  bool opened_ : 1 = false;    // on_open reported
  // Bytes come by completion (EventLoop::receive; plain sockets on io_uring): the watch is for
  // EPOLLOUT only, and receiving_ says whether the loop was asked to receive.
  bool completion_ : 1 = false;
  bool receiving_ : 1 = false;
};

}  // namespace keel
