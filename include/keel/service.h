// Service: what is said on a connection (echo, chat, ...), written once and driven by any engine.
// A service never touches sockets, epoll or threads; it reacts to events and acts through Server.
// Thread safety: an engine may call a service from several threads at once, but never
// concurrently for the same connection; state shared across connections needs its own guard.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/net/buffer.h"
#include "keel/net/connection_id.h"
#include "keel/net/endpoint.h"
#include "keel/net/tcp_connection.h"

namespace keel {

// What a service may do to connections, by id. Any thread. Stale ids are no-ops returning false.
class Server {
 public:
  virtual bool send(ConnectionId id, std::string_view bytes) = 0;
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
  // With Overflow::disconnect: the last line the slow consumer is sent before it is closed.
  virtual std::string overflow_line(size_t queued_bytes) const {
    return "! disconnected: " + std::to_string(queued_bytes) + " bytes waiting for you to read\n";
  }

  // --- Operator (admin endpoint) hooks. Called from any loop thread; guard shared state. ---
  // Service-specific columns of `keel ctl list`, e.g. {"nick","alice"}, {"room","#lobby"}.
  virtual void describe(ConnectionId, std::vector<std::pair<std::string, std::string>>&) const {}
  // What a client receives when an operator sends it text (`keel ctl send`, `broadcast`).
  virtual std::string operator_line(std::string_view text) const {
    return std::string(text) + "\n";
  }
  // Sent to a client before an operator's kick closes it (empty: nothing).
  virtual std::string kick_line(std::string_view /*reason*/) const { return {}; }
  // Connections in a room (`keel ctl broadcast --room R`); services without rooms have none.
  virtual std::vector<ConnectionId> room_members(std::string_view /*room*/) const { return {}; }
  virtual bool has_rooms() const noexcept { return false; }
};

}  // namespace keel
