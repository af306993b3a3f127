// Service: what is said on a connection (echo, chat, ...), written once and driven by any engine.
// A service never touches sockets, epoll or threads; it reacts to events and acts through Server.
// Thread safety: an engine may call a service from several threads at once, but never
// concurrently for the same connection; state shared across connections needs its own guard.
#pragma once

#include <string_view>

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

 protected:
  ~Server() = default;
};

struct ConnectionInfo {
  ConnectionId id;
  Endpoint peer;
  Endpoint local;
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
};

}  // namespace keel
