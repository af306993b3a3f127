// ProcessesEngine: a process per connection (--model processes). The parent accepts; a
// single-threaded spawner process, forked once by start(), forks the child (so no lock another
// thread of the parent holds is inherited locked), and the child serves the one socket with a
// one-thread reactor (ReactorEngine::adopt), then exits. The child runs the service as it was
// at start(): connections share no state, so it needs nothing the parent changes later.
// A crash, abort() or leak in a service ends one client, never the server. Only for services
// whose connections share nothing (Service::connections_independent()): a child's memory is its
// own, so chat rooms could not meet across children, and the constructor refuses such a service.
// The parent never sees the bytes: send(), shutdown(), pause/resume_reading() return false and
// timers return 0; close() is SIGKILL to the child, close_gracefully() SIGTERM (the child then
// finishes its connection gracefully) and SIGKILL after grace. At max_connections accepting
// waits (the listeners are not polled) until a child exits, instead of accepting and closing.
// start() forks the spawner itself, so call it before the program starts other threads (keel
// serve starts its engines, then its loops): a thread inside the allocator at that fork leaves
// the allocator locked in the spawner for good under AddressSanitizer (GCC 12, clang 14), and
// the spawner and its children hang at their next allocation (glibc's malloc is fork-safe).
// Thread safety: as keel::Engine (keel/engine/engine.h): start(), stop_accepting(), drain() and
// stop() from the owning thread; everything else from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "keel/engine/engine.h"
#include "keel/net/tcp_server.h"

namespace keel {

class ProcessCore;

class ProcessesEngine final : public Engine {
 public:
  // Uses options.listen, socket, max_connections and high_water_bytes (per connection, in the
  // child). Throws Error when the service shares state across connections. The service must
  // outlive the engine.
  ProcessesEngine(ServerOptions options, Service& service);
  ~ProcessesEngine() override;

  // Called on the engine's thread for each child that ended badly (exit status not 0, or a
  // signal the engine did not send for a drain or stop): wait_status as from waitpid. Set
  // before start(). The library does not log; the program decides.
  using ExitHook = std::function<void(const ClientSnapshot&, int wait_status)>;
  void on_abnormal_exit(ExitHook hook);

  const char* model() const noexcept override { return "processes"; }
  Service& service() noexcept override { return service_; }
  void start() override;
  const std::vector<Endpoint>& endpoints() const noexcept override;
  void stop_accepting() override;
  size_t drain(std::chrono::milliseconds timeout) override;
  void stop() override;
  EngineStats stats() const override;
  size_t connection_count() const noexcept override;
  void visit(const std::function<void(const ClientSnapshot&)>& fn) override;

  bool send(ConnectionId, std::string_view) override { return false; }
  bool shutdown(ConnectionId) override { return false; }
  bool close(ConnectionId id, std::string_view reason) override;
  bool close_gracefully(ConnectionId id, std::string_view last_line, std::string_view reason,
                        std::chrono::milliseconds grace) override;
  bool pause_reading(ConnectionId) override { return false; }
  bool resume_reading(ConnectionId) override { return false; }
  TimerId start_timer(ConnectionId, std::chrono::milliseconds, TimerTask) override { return 0; }
  void cancel_timer(ConnectionId, TimerId) override {}

 private:
  Service& service_;
  ServerOptions options_;
  ExitHook exit_hook_;
  std::unique_ptr<ProcessCore> core_;
};

}  // namespace keel
