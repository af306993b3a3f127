// ProcessCore: the process-per-connection machinery shared by `keel exec` and ProcessesEngine.
// It listens, accepts, forks one child per connection (the parent then closes its copy of the
// socket), reaps children through pidfds (no process-wide SIGCHLD handler and no waitpid(-1),
// so a library user's other children are never stolen), keeps a table of live children, and at
// max_connections stops polling the listeners until a child exits (like tcpserver -c: clients
// wait in the backlog instead of being accepted and closed). Each child leads its own process
// group, so a kill reaches the programs it started too, and a terminal's Ctrl-C reaches only
// keel, which then drains.
// Everything runs on one private event-loop thread; fork() happens there.
// Thread safety: start(), stop_accepting(), drain() and stop() from the owning thread; kill(),
// stats(), child_count() and children() from any thread. Callbacks run on the core's thread.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/engine/engine.h"
#include "keel/net/connection_id.h"
#include "keel/net/endpoint.h"
#include "keel/net/loop_pool.h"
#include "keel/net/socket.h"

namespace keel {

// What the forked child is given. Every descriptor of the parent is still open in the child
// (most are close-on-exec); a child that does not exec must close what it does not own.
struct ChildContext {
  ConnectionId id;
  int socket_fd = -1;  // the accepted socket: non-blocking, close-on-exec
  int stderr_fd = -1;  // write end of the parent's stderr pipe (capture_stderr), else -1
  Endpoint peer;
  Endpoint local;
  std::optional<ucred> peer_cred;  // Unix sockets: the connecting process (SO_PEERCRED)
};

// One live child as the table shows it.
struct ChildInfo {
  ConnectionId id;
  int pid = 0;
  Endpoint peer;
  std::chrono::steady_clock::time_point opened_at;
};

struct ProcessCoreOptions {
  std::vector<Endpoint> listen;
  SocketOptions socket;
  // 0 = no cap. At the cap the listeners are not polled until a child exits.
  size_t max_connections = 0;
  // 0 = none. A TCP connection that moved no payload byte either way for this long has its
  // child's process group killed. Measured by the kernel: TCP_INFO last_data_recv/_sent on a
  // copy of the socket the parent keeps (the child owns the socket, so the parent sees no
  // bytes). Unix endpoints have no such clock, so start() refuses the combination.
  std::chrono::milliseconds idle_timeout{0};
  // Give each child a pipe as stderr; the parent reads it and calls on_stderr_line.
  bool capture_stderr = false;
  // Unix endpoints are chmod-ed to this mode after bind (0 = leave the umask's choice).
  unsigned unix_mode = 0;
  // Runs in the child right after fork (one thread, signal mask cleared, own process group).
  // Must not return; if it does, the child _exits with 127.
  std::function<void(const ChildContext&)> child_main;
  // A child was reaped. wait_status as from waitpid (-1 when unknown: already reaped by
  // someone else); why is "" or the core's reason for killing it ("idle timeout", "drain").
  std::function<void(const ChildInfo&, int wait_status, std::string_view why)> on_exit;
  // One line (without the newline) the child wrote to its stderr pipe.
  std::function<void(const ChildInfo&, std::string_view line)> on_stderr_line;
};

class ProcessCore {
 public:
  explicit ProcessCore(ProcessCoreOptions options);
  ~ProcessCore();
  ProcessCore(const ProcessCore&) = delete;
  ProcessCore& operator=(const ProcessCore&) = delete;

  // Binds every endpoint (throws Error naming it) and starts accepting.
  void start();
  const std::vector<Endpoint>& endpoints() const noexcept { return bound_; }
  // Closes the listeners (removing Unix socket files); children carry on. Idempotent.
  void stop_accepting();
  // stop_accepting(), SIGTERM to every child's group, wait up to timeout, then SIGKILL what is
  // left and wait for it. Returns how many had to be killed.
  size_t drain(std::chrono::milliseconds timeout);
  // SIGKILL to every child, wait, stop the thread. Idempotent; the destructor calls it.
  void stop();

  // Signals the process group of child id; false when id is not a live child. why (if not
  // empty) is what on_exit will be told, e.g. "closed by operator".
  bool kill(ConnectionId id, int signal_number, std::string_view why = {});
  // SIGTERM now, SIGKILL if it is still alive after grace. False when id is not a live child.
  bool terminate(ConnectionId id, std::chrono::milliseconds grace, std::string_view why);
  // accept_errors counts failed accept4 (not EAGAIN), pipe and fork; active and processes are
  // the children alive (not yet reaped).
  EngineStats stats() const;
  size_t child_count() const;
  std::vector<ChildInfo> children() const;
  // The children as Engine::visit shows them (no byte counters: the parent sees no bytes).
  void visit(const std::function<void(const ClientSnapshot&)>& fn) const;

 private:
  struct Listener;
  struct Child;
  void on_listener_ready(Listener& l);
  void spawn(int fd);
  void reap(int pid);
  void read_stderr(Child& c, bool final);
  void emit_stderr(const Child& c, std::string_view line);
  void check_idle();
  void update_listening();
  void signal_all(int signal_number, const char* why);
  bool wait_for_no_children(std::chrono::milliseconds timeout);

  ProcessCoreOptions options_;
  LoopPool pool_{1};
  EventLoop& loop_;
  std::vector<Endpoint> bound_;
  std::vector<std::unique_ptr<Listener>> listeners_;  // loop thread after start()
  bool listening_ = false;                            // listeners watched (loop thread)
  std::map<int, std::unique_ptr<Child>> children_;    // by pid; guarded by mutex_
  mutable std::mutex mutex_;
  std::condition_variable idle_cv_;  // children_ became empty
  uint64_t next_id_ = 1;             // loop thread
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<uint64_t> fd_exhaustion_{0};
  TimerId idle_timer_ = 0;
  TimerId backoff_timer_ = 0;
  int reserve_fd_ = -1;
  bool started_ = false;
  bool accepting_stopped_ = false;
  bool stopped_ = false;
};

}  // namespace keel
