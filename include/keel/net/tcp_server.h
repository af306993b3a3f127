// TcpServer: listens on one or more endpoints and hands accepted connections to the loops of a
// LoopPool, either from one acceptor (round robin) or with one SO_REUSEPORT listener per loop.
// Thread safety: start(), stop_accepting(), drain() and stop() from the owning thread (not a pool
// loop); send/shutdown/close by id, connection_count() and stats() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "keel/net/admission.h"
#include "keel/net/endpoint.h"
#include "keel/net/loop_pool.h"
#include "keel/net/socket.h"
#include "keel/net/stream.h"
#include "keel/net/tcp_connection.h"

namespace keel {

struct ServerOptions {
  std::vector<Endpoint> listen;
  SocketOptions socket;
  // One SO_REUSEPORT listener per loop (kernel spreads connections) instead of one acceptor.
  bool listener_per_loop = false;
  // 0 = no cap. Over the cap, new connections are accepted and closed at once. The cap is
  // exact under listener_per_loop too: a slot is checked and taken in one atomic step.
  size_t max_connections = 0;
  // 0 = no cap. Connections from one client address (PerAddressLimit: the PROXY header's
  // address when there is one, else the socket's peer) over this are closed when they would
  // open, before on_open; their slot is freed when they close.
  size_t max_connections_per_ip = 0;
  // What a refused client is sent before the close (empty or unset: nothing). Over
  // max_connections it is written only without a stream (no TLS or PROXY stage has run yet).
  std::function<std::string(Refusal)> refusal_line;
  // Told of every refused connection, on the thread that refused it (a rate-limited log).
  std::function<void(Refusal)> on_refused;
  // Descriptors each acceptor keeps in reserve to accept with when the process has none left
  // (EMFILE): up to this many clients are served through descriptor exhaustion instead of
  // shed (the admin endpoint). 0: EMFILE sheds the waiting client (one reserve fd).
  size_t reserved_fds = 0;
  // Descriptors this server leaves to others (the admin endpoint): a connection accepted onto
  // one of the last fd_headroom descriptors the open-file limit allows is closed at once and
  // counted as fd exhaustion, so the process never fills its table with clients. 0: none.
  size_t fd_headroom = 0;
  size_t high_water_bytes = 1 << 20;
  // TLS, PROXY header: what each connection's bytes pass through (default: plain).
  StreamOptions stream;
  // Idle and half-close deadlines of every connection (default: none).
  ConnectionTimeouts timeouts;
  // After an accept failure that is not EMFILE-recoverable, pause accepting this long.
  std::chrono::milliseconds accept_backoff{100};
};

// Bytes, reads and sends of a server's connections, closed ones included; queued output of the
// live ones.
struct ServerTraffic {
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t reads = 0;
  uint64_t sends = 0;
  uint64_t queued_bytes = 0;
};

struct ServerStats {
  uint64_t accepted = 0;
  uint64_t rejected_over_cap = 0;
  uint64_t rejected_per_ip = 0;
  uint64_t accept_errors = 0;  // every failed accept4 call other than EAGAIN
  uint64_t fd_exhaustion = 0;  // EMFILE/ENFILE events (connections shed with the reserve fd)
  uint64_t open_failures = 0;  // closed in the pre-open stage (handshake, PROXY header)
  uint64_t active = 0;
  // Connections closed, by CloseReason::Kind (every accepted connection ends in one).
  std::array<uint64_t, CloseReason::kKinds> closed{};
};

class Acceptor;

class TcpServer {
 public:
  TcpServer(LoopPool& pool, ServerOptions options, ConnectionCallbacks callbacks);
  ~TcpServer();
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  // Binds and listens on every endpoint (throws Error naming the endpoint), then starts
  // accepting on the pool's loops. The pool may be started before or after.
  void start();
  // Serves a socket accepted elsewhere (a process-per-connection child) as if accepted here:
  // counted, given the connection options, handed to the next loop.
  void adopt(Socket socket);
  // The endpoints as bound (port 0 replaced by the kernel's choice).
  const std::vector<Endpoint>& endpoints() const noexcept { return bound_; }

  // Closes the listeners; existing connections carry on. Waits until done.
  void stop_accepting();
  // How drain() ends the connections: each is sent last_line (if any) and closed gracefully,
  // or, with wait_for_clients, left alone to go on until its client finishes.
  struct DrainPolicy {
    bool wait_for_clients = false;
    std::string last_line;
  };
  // stop_accepting(), then end every connection as policy says and wait up to timeout for them
  // to finish; what is left is force-closed. Returns the number force-closed.
  size_t drain(std::chrono::milliseconds timeout, const DrainPolicy& policy);
  size_t drain(std::chrono::milliseconds timeout) { return drain(timeout, DrainPolicy{}); }
  // Force-closes everything and waits until every connection of this server has run its
  // on_close: none can call back into the server after stop() returns, however long that takes.
  // Idempotent; the destructor calls it.
  void stop();

  bool send(ConnectionId id, std::string_view bytes) { return pool_.send(id, bytes); }
  bool send_file(ConnectionId id, FileRegion region) {
    return pool_.send_file(id, std::move(region));
  }
  bool shutdown(ConnectionId id) { return pool_.shutdown(id); }
  bool close(ConnectionId id, std::string_view reason) { return pool_.close(id, reason); }

  // Whether c was accepted by this server (loop thread of c).
  bool owns(const TcpConnection& c) const noexcept { return &c.callbacks() == &wrapped_; }
  // The user tag of a connection refused when it would open (max_connections_per_ip); its
  // owner never hears of it, so it never sees this tag either.
  static constexpr uint64_t kRefusedTag = ~uint64_t{0};

  size_t connection_count() const noexcept { return active_.load(std::memory_order_relaxed); }
  ServerStats stats() const noexcept;
  // Visits every loop (waits for each): not from a pool loop. Successive calls from one thread
  // never see a total go down.
  ServerTraffic traffic();
  LoopPool& pool() noexcept { return pool_; }

 private:
  friend class Acceptor;
  // peer: the address accept4 reported (unset: ask the socket).
  void on_accepted(EventLoop& loop, Socket socket, const Endpoint& peer);
  void register_connection(EventLoop& loop, Socket socket, const Endpoint& peer);
  void close_all(bool graceful, std::string_view reason, std::string_view last_line = {});
  // Takes a slot of active_, unless max_connections are taken already.
  bool take_slot();
  // Counts and reports a refused connection; the line its client should be sent.
  std::string refused(Refusal reason);
  // Gives back a slot of active_ (waking a waiter at 0).
  void release_slot();
  // Returns whether every connection closed in time.
  bool wait_for_no_connections(std::chrono::milliseconds timeout);

  LoopPool& pool_;
  ServerOptions options_;
  ConnectionCallbacks callbacks_;  // what users gave
  ConnectionCallbacks wrapped_;    // what connections call (counts, then forwards)
  std::vector<Endpoint> bound_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::atomic<size_t> active_{0};
  std::mutex idle_mutex_;
  std::condition_variable idle_cv_;
  std::atomic<uint64_t> accepted_{0};
  std::unique_ptr<PerAddressLimit> per_address_;  // null: no per-address cap
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> rejected_per_ip_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<uint64_t> fd_exhaustion_{0};
  std::atomic<uint64_t> open_failures_{0};
  std::array<std::atomic<uint64_t>, CloseReason::kKinds> closed_{};
  // What closed connections moved, per loop (index: EventLoop::index()), each written and read
  // on its own loop only: traffic() reads a loop's closed and live counts in one go there, so
  // its totals never go down (a connection closing is counted live or closed, never both).
  std::vector<ServerTraffic> closed_traffic_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace keel
