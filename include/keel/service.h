// Service: what is said on a connection (echo, chat, ...), written once and driven by any engine
// (reactor, threads, processes). A service never touches sockets, epoll, threads or processes; it
// reacts to events and acts through Server. What it shows the operator is a separate, optional
// interface (keel/operator.h).
// Thread safety: an engine may call a service from several threads at once, but never
// concurrently for the same connection; state shared across connections needs its own guard.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/net/admission.h"
#include "keel/net/buffer.h"
#include "keel/net/connection_id.h"
#include "keel/net/endpoint.h"
#include "keel/net/file_region.h"
#include "keel/net/tcp_connection.h"

namespace keel {

// What a service may do to connections, by id. Any thread. Stale ids are no-ops returning false.
class Server {
 public:
  virtual bool send(ConnectionId id, std::string_view bytes) = 0;
  // Part of a file, sent after what is queued now and before what is sent later (the kernel
  // moves the bytes where it can: sendfile). A file that ends before the region does closes
  // the connection. False as for send(), and from an engine that cannot send files (the
  // parent side of processes and workers, whose connections live in other processes).
  virtual bool send_file(ConnectionId, FileRegion) { return false; }
  // FIN once queued output is sent; the connection ends when the peer finishes too.
  virtual bool shutdown(ConnectionId id) = 0;
  // Close now, dropping queued output.
  virtual bool close(ConnectionId id, std::string_view reason) = 0;
  // The same bytes to each id (stale ones skipped); returns how many were live. Engines may
  // share one copy among all recipients (chat rooms, broadcasts).
  virtual size_t send_many(const std::vector<ConnectionId>& ids, std::string_view bytes) {
    size_t n = 0;
    for (ConnectionId id : ids) n += send(id, bytes) ? 1 : 0;
    return n;
  }
  // Sends last_line (if not empty), then FIN once output drains; input from then on is
  // discarded; the connection ends at the peer's FIN, or is closed when grace runs out.
  // How kicks and slow-consumer evictions end a client.
  virtual bool close_gracefully(ConnectionId id, std::string_view last_line,
                                std::string_view reason, std::chrono::milliseconds grace) = 0;

  // Stop / start delivering on_data for id (TCP then pushes back on the peer). Idempotent.
  virtual bool pause_reading(ConnectionId id) = 0;
  virtual bool resume_reading(ConnectionId id) = 0;

  // Per-connection timers. Only on id's own thread, i.e. inside a service callback for id (or
  // inside one of its timers). fn runs later on that same thread, never if the connection has
  // closed first or the timer was cancelled. Returns 0 when id is not live.
  using TimerTask = std::function<void()>;
  virtual TimerId start_timer(ConnectionId id, std::chrono::milliseconds delay, TimerTask fn) = 0;
  // Cancelling a timer that has fired (or 0) does nothing. Same thread rule as start_timer.
  virtual void cancel_timer(ConnectionId id, TimerId timer) = 0;

 protected:
  ~Server() = default;
};

// What a service learns of a new connection. (The local address is not included: it would
// cost a getsockname() on every accept and no service needs it.)
struct ConnectionInfo {
  ConnectionId id;
  Endpoint peer;
};

class Service {
 public:
  // What the engine does when a connection's queued output passes the high-water mark.
  enum class Overflow {
    pause_reading,  // stop reading from this connection until its output drains (echo)
    disconnect,     // the reader is too slow: close it with a reason (chat)
  };

  virtual ~Service() = default;
  virtual const char* name() const noexcept = 0;
  virtual void on_open(Server&, const ConnectionInfo&) {}
  // in holds everything received and not consumed yet; consume what you use.
  virtual void on_data(Server& server, ConnectionId id, Buffer& in) = 0;
  // The peer will send no more. Default: finish our side once output drains.
  virtual void on_peer_closed(Server& server, ConnectionId id) { server.shutdown(id); }
  virtual void on_close(Server&, ConnectionId, const CloseReason&) {}
  virtual Overflow overflow() const noexcept { return Overflow::pause_reading; }
  // True when nothing is shared across connections (echo): each connection may then run in a
  // process of its own (--model processes, --workers). False (the safe default) for services
  // whose connections meet each other (chat rooms).
  virtual bool connections_independent() const noexcept { return false; }
  // With Overflow::disconnect: the last line the slow consumer is sent before it is closed.
  virtual std::string overflow_line(size_t queued_bytes) const {
    return "! disconnected: " + std::to_string(queued_bytes) + " bytes waiting for you to read\n";
  }

  // How a graceful drain (SIGTERM; Engine::drain) ends this service's connections.
  enum class Drain {
    close,   // send drain_line(), then FIN; later input is discarded (the default; chat)
    finish,  // keep serving each connection until its client finishes (echo): nothing that
             // arrives is dropped; the drain timeout bounds the wait
  };
  virtual Drain drain() const noexcept { return Drain::close; }
  // With Drain::close: the last line each client is sent before the FIN; empty: none.
  virtual std::string drain_line() const { return {}; }
  // The line a client turned away before it opens (over --max-connections or
  // --max-connections-per-ip) is sent before the close, whole and framed; empty (the default):
  // it is closed without a word, as a protocol without such a line (echo) needs.
  virtual std::string refusal_line(Refusal) const { return {}; }
};

}  // namespace keel
