// Stream: how a connection's bytes cross its socket when plain read/send is not enough (TLS), and
// the pre-open stage that must finish before the service sees the connection (TLS handshake,
// PROXY protocol header). A connection without a Stream does plain socket I/O and pays nothing
// for this seam: the stream pointer is null and the hot path takes the plain branch.
// Thread safety: not thread-safe; used only by the thread that drives its connection.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "keel/net/endpoint.h"

namespace keel {

class Stream {
 public:
  enum class Step : uint8_t {
    done,        // the stage is finished: the connection may open
    want_read,   // call open() again when the socket is readable
    want_write,  // call open() again when the socket is writable
    failed,      // close the connection; error_detail() says why
  };

  virtual ~Stream() = default;

  // The pre-open stage. Called once when the connection starts and again on each readiness the
  // last Step asked for, until it returns done or failed. peer is the socket's own peer address.
  virtual Step open(int fd, const Endpoint& peer) = 0;

  // After open() is done: the client's address as the stage learnt it (a PROXY header), to be
  // used instead of the socket's peer everywhere (on_open, logs, operators).
  virtual std::optional<Endpoint> claimed_peer() const { return std::nullopt; }
  // After open() is done: whether this stream carries the data from now on. A stage that only
  // works before open (the PROXY header) says false and hands over what follows it, if anything,
  // with take_next() (null: the plain socket).
  virtual bool carries_data() const { return true; }
  virtual std::unique_ptr<Stream> take_next() { return nullptr; }

  // Like recv(2): bytes read (> 0); 0 when the peer ended its direction (FIN, TLS close_notify);
  // -1 with errno set (EAGAIN: nothing ready; EPROTO: a protocol error, see error_detail()).
  virtual ssize_t read(int fd, char* data, size_t len) = 0;
  // Like send(2) with MSG_NOSIGNAL: bytes taken (possibly fewer than len), or -1 with errno.
  virtual ssize_t write(int fd, const char* data, size_t len) = 0;
  // Ends our direction (TLS close_notify, then the socket's FIN). Output is already flushed.
  virtual void shutdown_write(int fd) = 0;
  // Input the stream has already taken off the socket and not yet returned from read(): the
  // socket will not become readable for it, so the owner must call read() again by itself.
  virtual bool has_pending_input() const { return false; }

  // Why open() failed or read()/write() set EPROTO, for logs and close reasons.
  virtual std::string error_detail() const { return {}; }
  // For operators (keel ctl list): "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty for none.
  virtual std::string describe() const { return {}; }
};

// Makes the stream for each accepted connection of a server. An empty factory, or one that
// returns null, means plain socket I/O.
using StreamFactory = std::function<std::unique_ptr<Stream>()>;

// What a server does with a connection before its service sees it.
struct StreamOptions {
  StreamFactory factory;
  // The pre-open stage (TLS handshake, PROXY header) must finish within this; then the
  // connection is closed with a timeout reason.
  std::chrono::milliseconds open_timeout{10000};
  // A connection closed before it opened (failed handshake, bad PROXY header, timeout): the
  // service never hears of it, so this is where it is logged. Runs on the connection's thread.
  std::function<void(const Endpoint& peer, const std::string& reason)> on_open_failed;
};

}  // namespace keel
