// Exec: what `keel exec` runs in each connection's child: PROGRAM with the socket as stdin and
// stdout (blocking, as ordinary programs expect) and the UCSPI environment tcpserver and
// unixserver set: PROTO=TCP with TCPREMOTEIP/PORT and TCPLOCALIP/PORT, or PROTO=UNIX with the
// connecting process's credentials (SO_PEERCRED). execvp, never a shell: the arguments reach the
// program as given.
// ExecEngine is that as a keel::Engine, so `keel ctl` lists the programs (pid, peer) and kicks
// them. The parent never sees the bytes: send() returns false; close() is SIGKILL and
// close_gracefully() SIGTERM to the child's process group.
// Thread safety: as keel::Engine (see keel/engine/engine.h); configure_exec() from the owning
// thread before the core starts.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "keel/engine/engine.h"
#include "process_core.h"

namespace keel {

enum class ExecStderr {
  log,     // a pipe the server reads; each line is logged with the connection id
  client,  // the socket: the client sees the program's errors
  null,    // /dev/null
};

struct ExecOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  ExecStderr stderr_mode = ExecStderr::log;
};

// Sets core.child_main (and capture_stderr) so every connection runs exec.argv.
void configure_exec(ProcessCoreOptions& core, ExecOptions exec);

// The service `keel ctl` shows for exec ("exec"). The program, not keel, talks to the client,
// so no callback here is ever called.
class ExecService final : public Service {
 public:
  const char* name() const noexcept override { return "exec"; }
  void on_data(Server&, ConnectionId, Buffer&) override {}
  bool connections_independent() const noexcept override { return true; }
};

class ExecEngine final : public Engine {
 public:
  ExecEngine(ProcessCoreOptions core, ExecOptions exec);

  const char* model() const noexcept override { return "processes"; }
  Service& service() noexcept override { return service_; }
  void start() override { core_->start(); }
  const std::vector<Endpoint>& endpoints() const noexcept override { return core_->endpoints(); }
  void stop_accepting() override { core_->stop_accepting(); }
  size_t drain(std::chrono::milliseconds timeout) override { return core_->drain(timeout); }
  void stop() override { core_->stop(); }
  EngineStats stats() const override { return core_->stats(); }
  size_t connection_count() const noexcept override { return core_->child_count(); }
  void visit(const std::function<void(const ClientSnapshot&)>& fn) override { core_->visit(fn); }

  bool send(ConnectionId, std::string_view) override { return false; }
  bool shutdown(ConnectionId) override { return false; }
  bool close(ConnectionId id, std::string_view) override;
  bool close_gracefully(ConnectionId id, std::string_view, std::string_view,
                        std::chrono::milliseconds) override;
  bool pause_reading(ConnectionId) override { return false; }
  bool resume_reading(ConnectionId) override { return false; }
  TimerId start_timer(ConnectionId, std::chrono::milliseconds, TimerTask) override { return 0; }
  void cancel_timer(ConnectionId, TimerId) override {}

 private:
  ExecService service_;
  std::unique_ptr<ProcessCore> core_;
};

// Exit status 126 / 127 of a child: the program could not be executed / was not found (the
// child then writes why to its stderr first).
inline constexpr int kExecCannotRun = 126;
inline constexpr int kExecNotFound = 127;

}  // namespace keel
