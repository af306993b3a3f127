// ProcessCore: the process-per-connection machinery shared by `keel exec` and ProcessesEngine.
// It listens, accepts, and has one child forked per connection, keeps a table of live
// children, and at max_connections stops polling the listeners until a child exits (like
// tcpserver -c: clients wait in the backlog instead of being accepted and closed). Each child
// leads its own process group, so a kill reaches the programs it started too, and a terminal's
// Ctrl-C reaches only keel, which then drains.
// The forks happen in a spawner (spawner.h), a single-threaded process forked once by start(),
// because a fork from this multi-threaded process would hand the child every lock another
// thread held at that moment. Per connection, the parent sends the spawner the accepted socket
// (and the stderr pipe's write end) and closes its copies; the spawner forks, reaps and signals
// the children and reports each exit. The children are the spawner's, not ours: the parent
// never waits for them and never signals them itself, so a library user's own children and
// SIGCHLD handling are untouched. stop() ends with no child and no spawner left.
// Everything else runs on one private event-loop thread.
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
#include "keel/net/admission.h"
#include "keel/net/connection_id.h"
#include "keel/net/endpoint.h"
#include "keel/net/loop_pool.h"
#include "keel/net/socket.h"
#include "spawner.h"

namespace keel {

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
  // 0 = no cap. A connection from an address (the socket's peer) that already has this many
  // children is sent refusal_line (if set) and closed instead of given a child.
  size_t max_connections_per_ip = 0;
  std::function<std::string(Refusal)> refusal_line;
  // Told of every refused connection, on the core's loop thread (a rate-limited log).
  std::function<void(Refusal)> on_refused;
  // 0 = none. A TCP connection that moved no payload byte either way for this long has its
  // child's process group killed. Measured by the kernel: TCP_INFO last_data_recv/_sent on a
  // copy of the socket the parent keeps (the child owns the socket, so the parent sees no
  // bytes). Unix endpoints have no such clock, so start() refuses the combination.
  std::chrono::milliseconds idle_timeout{0};
  // Give each child a pipe as stderr; the parent reads it and calls on_stderr_line.
  bool capture_stderr = false;
  // Unix endpoints are chmod-ed to this mode after bind (0 = leave the umask's choice).
  unsigned unix_mode = 0;
  // Runs in the child right after fork (see ChildContext in spawner.h). Copied into the spawner
  // by start(): later changes to anything it refers to do not reach the children. Must not
  // return; if it does, the child _exits with 127.
  std::function<void(const ChildContext&)> child_main;
  // A child was reaped. wait_status as from waitpid (-1 when unknown: the spawner died); why is
  // "" or the core's reason for killing it ("idle timeout", "drain").
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
  // stop_accepting(), SIGTERM to every child's group (unless signal_children is false: the
  // children finish on their own), wait up to timeout, then SIGKILL what is left and wait for
  // it. Returns how many had to be killed.
  size_t drain(std::chrono::milliseconds timeout, bool signal_children = true);
  // SIGKILL to every child, wait, stop the thread. Idempotent; the destructor calls it.
  void stop();

  // Signals the process group of child id; false when id is not a live child. why (if not
  // empty) is what on_exit will be told, e.g. "closed by operator".
  bool kill(ConnectionId id, int signal_number, std::string_view why = {});
  // SIGTERM now, SIGKILL if it is still alive after grace. False when id is not a live child.
  bool terminate(ConnectionId id, std::chrono::milliseconds grace, std::string_view why);
  // accept_errors counts failed accept4 (not EAGAIN), pipe and fork; active and processes are
  // the children alive (not yet reaped, or being forked).
  EngineStats stats() const;
  size_t child_count() const;
  // The children forked and not yet reaped. Waits (briefly) for the spawner to answer the spawn
  // requests sent before the call, so a client served by now is listed with its pid.
  std::vector<ChildInfo> children() const;
  // The children as Engine::visit shows them (no byte counters: the parent sees no bytes).
  void visit(const std::function<void(const ClientSnapshot&)>& fn) const;

 private:
  struct Listener;
  struct Child;
  struct Channel;
  void on_listener_ready(Listener& l);
  void spawn(int fd);
  void answered(uint64_t id);
  void on_channel_ready(uint32_t events);
  void read_events();
  void handle_event(const SpawnerEvent& e);
  void send(const SpawnRequest& r, int socket_fd = -1, bool close_socket = false,
            int stderr_fd = -1);
  void flush();
  void spawner_lost();
  void remove_child(uint64_t id, int status, bool report);
  void read_stderr(Child& c, bool final);
  void emit_stderr(const Child& c, std::string_view line);
  void check_idle();
  void update_listening();
  void signal_all(int signal_number, const char* why);
  bool wait_for_no_children(std::chrono::milliseconds timeout);
  void wait_for_spawner();

  ProcessCoreOptions options_;
  LoopPool pool_{1};
  EventLoop& loop_;
  std::vector<Endpoint> bound_;
  std::vector<std::unique_ptr<Listener>> listeners_;  // loop thread after start()
  bool listening_ = false;                            // listeners watched (loop thread)
  std::unique_ptr<Channel> channel_;                  // loop thread after start()
  int spawner_pid_ = -1;
  std::map<uint64_t, std::unique_ptr<Child>> children_;  // by id; guarded by mutex_
  mutable std::mutex mutex_;
  std::condition_variable idle_cv_;              // children_ became empty
  uint64_t next_id_ = 1;                         // loop thread
  mutable std::condition_variable answered_cv_;  // last_answered_ grew
  uint64_t last_requested_ = 0;  // highest id sent to the spawner; guarded by mutex_
  uint64_t last_answered_ = 0;   // highest id it answered; guarded by mutex_
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<uint64_t> fd_exhaustion_{0};
  std::atomic<uint64_t> rejected_per_ip_{0};
  std::unique_ptr<PerAddressLimit> per_address_;  // null: no per-address cap
  TimerId idle_timer_ = 0;
  TimerId backoff_timer_ = 0;
  int reserve_fd_ = -1;
  bool started_ = false;
  bool accepting_stopped_ = false;
  bool stopped_ = false;
};

}  // namespace keel
