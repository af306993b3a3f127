// Engine: who drives a service's connections (reactor loops, a thread per connection, a process
// per connection). The CLI and the admin endpoint use engines only through this interface, so
// they never know which model runs. An engine is also the service's Server (send, close, ... by
// id). docs/architecture.md shows the engines side by side.
// Thread safety: start(), stop_accepting(), drain() and stop() from the owning thread; the
// Server verbs, stats(), connection_count() and visit() from any thread that is not one of this
// engine's own (visit waits for the engine's threads to answer).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "keel/net/connection_id.h"
#include "keel/net/connection_tap.h"
#include "keel/net/endpoint.h"
#include "keel/net/tcp_connection.h"
#include "keel/service.h"

namespace keel {

// One worker process of a prefork supervisor (--workers), as `keel ctl stats` lists it.
struct WorkerRow {
  uint64_t pid = 0;  // 0 while the slot waits for a restart
  uint64_t restarts = 0;
  uint64_t accepted = 0;  // by this process (a restarted worker starts again at 0)
  uint64_t active = 0;
};

// Counters an engine keeps for `keel ctl stats` and the logs.
struct EngineStats {
  uint64_t accepted = 0;
  uint64_t rejected_over_cap = 0;  // over --max-connections
  uint64_t rejected_per_ip = 0;    // over --max-connections-per-ip
  uint64_t accept_errors = 0;      // failed accept calls other than EAGAIN
  uint64_t fd_exhaustion = 0;      // EMFILE/ENFILE events
  uint64_t open_failures = 0;      // closed before open: TLS handshake, PROXY header, timeout
  uint64_t active = 0;             // live connections
  // Connections closed, by CloseReason::Kind (processes and workers models: not counted).
  std::array<uint64_t, CloseReason::kKinds> closed{};
  uint64_t threads = 0;            // threads serving connections now (threads model), else 0
  uint64_t processes = 0;          // child processes alive now (processes model), else 0
  std::vector<WorkerRow> workers;  // per worker (workers model only), else empty
  // Clients dropped as too slow (Service::Overflow::disconnect: output over the high-water mark).
  uint64_t slow_consumer_drops = 0;
};

// Bytes and messages moved by a service's connections since it started (reactor and threads
// models: closed connections included; processes and workers: the live ones only), and the
// output waiting in live connections now. A message is a read that delivered bytes and a send
// call, unless the service counts its own (OperatorHooks::message_counts).
struct EngineTraffic {
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t reads = 0;
  uint64_t sends = 0;
  uint64_t queued_bytes = 0;
};

// One live connection as the operator sees it, copied out of the engine.
struct ClientSnapshot {
  ConnectionId id;
  Endpoint peer;
  ConnectionState state = ConnectionState::open;
  std::chrono::steady_clock::time_point opened_at;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  size_t queued_bytes = 0;
  int pid = 0;              // the child serving it (processes model), else 0
  size_t buffer_bytes = 0;  // input + output buffer memory held for it
  bool reading_paused = false;
  std::string transport;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty for plain TCP
};

class Engine : public Server {
 public:
  virtual ~Engine() = default;

  // "reactor", "threads" or "processes": for logs and `keel ctl stats`.
  virtual const char* model() const noexcept = 0;
  virtual Service& service() noexcept = 0;

  // Binds every endpoint (throws Error naming it) and starts serving.
  virtual void start() = 0;
  // The endpoints as bound (port 0 replaced by the kernel's choice).
  virtual const std::vector<Endpoint>& endpoints() const noexcept = 0;
  // Closes the listeners; existing connections carry on. Idempotent.
  virtual void stop_accepting() = 0;
  // stop_accepting(), finish every connection gracefully and wait up to timeout; what is left
  // is closed. Returns how many had to be closed.
  virtual size_t drain(std::chrono::milliseconds timeout) = 0;
  // Closes everything now and waits. Idempotent.
  virtual void stop() = 0;

  virtual EngineStats stats() const = 0;
  // Looks at every live connection (as visit() does): for the admin `stats` and /metrics, not
  // for hot paths. The default sums visit()'s snapshots (live connections only).
  virtual EngineTraffic traffic();
  virtual size_t connection_count() const noexcept = 0;
  // Calls fn, on the calling thread, for a snapshot of every live connection.
  virtual void visit(const std::function<void(const ClientSnapshot&)>& fn) = 0;

  // Watching a client (keel ctl watch; keel/net/connection_tap.h). Engines whose connections
  // live in this process can tap them (reactor, threads); the others (processes, workers)
  // answer false to all three.
  virtual bool can_tap() const noexcept { return false; }
  // Any thread. From now on id's connection hands tap copies of what it reads and is sent, and
  // tap->on_end when it closes; a tap set before is dropped unheard. False (tap dropped, never
  // called) when id is not live; if the connection closes before the tap is in place, on_end is
  // still called.
  virtual bool set_tap(ConnectionId, std::unique_ptr<ConnectionTap>) { return false; }
  // Any thread. Removes the tap from id's connection if it is still `tap` (which then hears
  // nothing more, not even on_end, and is destroyed on the connection's thread).
  virtual bool clear_tap(ConnectionId, const ConnectionTap*) { return false; }
};

}  // namespace keel
