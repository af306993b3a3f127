#include "keel/engine/processes.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "keel/engine/reactor.h"
#include "keel/error.h"
#include "keel/net/loop_pool.h"
#include "process_core.h"

namespace keel {
namespace {

// The child's view of the service: the same service, and the child's loop ends when its one
// connection has closed.
class LastConnection final : public Service {
 public:
  LastConnection(Service& inner, EventLoop& loop) : inner_(inner), loop_(loop) {}
  const char* name() const noexcept override { return inner_.name(); }
  void on_open(Server& s, const ConnectionInfo& info) override { inner_.on_open(s, info); }
  void on_data(Server& s, ConnectionId id, Buffer& in) override { inner_.on_data(s, id, in); }
  void on_peer_closed(Server& s, ConnectionId id) override { inner_.on_peer_closed(s, id); }
  void on_close(Server& s, ConnectionId id, const CloseReason& reason) override {
    inner_.on_close(s, id, reason);
    loop_.quit();
  }
  Overflow overflow() const noexcept override { return inner_.overflow(); }
  bool connections_independent() const noexcept override { return true; }
  std::string overflow_line(size_t queued) const override { return inner_.overflow_line(queued); }

 private:
  Service& inner_;
  EventLoop& loop_;
};

// SIGTERM (drain, kick) through a signalfd: finish the connection gracefully (pending output,
// then FIN; closed at the peer's FIN). The parent's SIGKILL bounds how long that may take.
class TermHandler final : public IoHandler {
 public:
  TermHandler(EventLoop& loop, int signal_fd) : loop_(loop), signal_fd_(signal_fd) {}
  void handle_events(uint32_t) override {
    signalfd_siginfo info;
    [[maybe_unused]] ssize_t n = ::read(signal_fd_, &info, sizeof info);
    loop_.for_each_connection([](TcpConnection& c) { c.close_gracefully("server stopping"); });
  }

 private:
  EventLoop& loop_;
  int signal_fd_;
};

constexpr int kSocketFd = 3;

// Runs in the forked child, a fork of the spawner, itself a fork of the parent at start(). The
// child stays single-threaded: its one loop runs on this thread (starting a thread in a fork of
// a multi-threaded program is what ThreadSanitizer refuses, and one connection needs none). No
// logging here: in a library user's program another thread may have held the logger's mutex
// when start() forked the spawner.
[[noreturn]] void serve_one(Service& service, const ServerOptions& parent,
                            const ChildContext& ctx) {
  // Keep the socket (at fd 3), stdin/out/err; nothing else (the spawner passes only the socket,
  // but a descriptor inherited without close-on-exec must not stay open here either).
  if (ctx.socket_fd != kSocketFd && ::dup3(ctx.socket_fd, kSocketFd, O_CLOEXEC) < 0) ::_exit(1);
  ::close_range(kSocketFd + 1, ~0U, 0);
  // SIGTERM arrives through a signalfd; the rest of the mask is cleared.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::sigprocmask(SIG_SETMASK, &term, nullptr);
  int signal_fd = ::signalfd(-1, &term, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) ::_exit(1);
  ServerOptions options;  // no listen: the one connection is adopted
  options.socket = parent.socket;
  options.high_water_bytes = parent.high_water_bytes;
  options.timeouts = parent.timeouts;
  // TLS and PROXY run here, in the child: the parent never sees the bytes. on_open_failed runs
  // here too (the keel program forks the spawner while it has one thread, so its logger is
  // free; a library user's hook must not take a lock another thread may have held).
  options.stream = parent.stream;
  LoopPool pool(1);  // never started: its loop runs below, on this thread
  EventLoop& loop = pool.loop(0);
  LastConnection last(service, loop);
  // A connection closed before it opened never reaches the service: end the child here too.
  options.stream.on_open_failed = [report = parent.stream.on_open_failed, &loop](
                                      const Endpoint& peer, const std::string& reason) {
    if (report) report(peer, reason);
    loop.quit();
  };
  ReactorEngine engine(pool, std::move(options), last);
  TermHandler on_term(loop, signal_fd);
  try {
    engine.adopt(Socket(kSocketFd));
    loop.watch(signal_fd, EPOLLIN, &on_term);
  } catch (const Error&) {
    ::_exit(1);
  }
  loop.run();  // until the connection has closed
  // Its socket is closed and its on_close has run: nothing is left to tear down.
  ::_exit(0);
}

bool abnormal(int status, std::string_view why) {
  if (status == -1) return true;
  if (WIFEXITED(status)) return WEXITSTATUS(status) != 0;
  return !(WIFSIGNALED(status) && !why.empty() &&
           (why == "drain" || why == "drain timeout" || why == "stopped"));
}

}  // namespace

ProcessesEngine::ProcessesEngine(ServerOptions options, Service& service)
    : service_(service), options_(std::move(options)) {
  if (!service.connections_independent())
    throw Error(std::string(service.name()) +
                " shares state across connections: it runs under --model reactor or threads, "
                "not processes");
  ProcessCoreOptions core;
  core.listen = options_.listen;
  core.socket = options_.socket;
  core.max_connections = options_.max_connections;
  core.max_connections_per_ip = options_.max_connections_per_ip;
  core.refusal_line = [this](Refusal reason) { return service_.refusal_line(reason); };
  core.on_refused = options_.on_refused;
  core.child_main = [this](const ChildContext& ctx) { serve_one(service_, options_, ctx); };
  core.on_exit = [this](const ChildInfo& c, int status, std::string_view why) {
    if (!exit_hook_ || !abnormal(status, why)) return;
    ClientSnapshot snap;
    snap.id = c.id;
    snap.peer = c.peer;
    snap.opened_at = c.opened_at;
    snap.pid = c.pid;
    exit_hook_(snap, status);
  };
  core_ = std::make_unique<ProcessCore>(std::move(core));
}

ProcessesEngine::~ProcessesEngine() = default;

void ProcessesEngine::on_abnormal_exit(ExitHook hook) {
  exit_hook_ = std::move(hook);
}
void ProcessesEngine::start() {
  core_->start();
}
const std::vector<Endpoint>& ProcessesEngine::endpoints() const noexcept {
  return core_->endpoints();
}
void ProcessesEngine::stop_accepting() {
  core_->stop_accepting();
}
size_t ProcessesEngine::drain(std::chrono::milliseconds timeout) {
  // Drain::finish: each child serves its client until the client finishes.
  return core_->drain(timeout, service_.drain() == Service::Drain::close);
}
void ProcessesEngine::stop() {
  core_->stop();
}
EngineStats ProcessesEngine::stats() const {
  return core_->stats();
}
size_t ProcessesEngine::connection_count() const noexcept {
  return core_->child_count();
}
void ProcessesEngine::visit(const std::function<void(const ClientSnapshot&)>& fn) {
  core_->visit(fn);
}

bool ProcessesEngine::close(ConnectionId id, std::string_view reason) {
  return core_->kill(id, SIGKILL, reason);
}

// The child drains on SIGTERM: queued output goes out, then FIN. last_line cannot be added from
// here (the parent has no way into the child's connection).
bool ProcessesEngine::close_gracefully(ConnectionId id, std::string_view, std::string_view reason,
                                       std::chrono::milliseconds grace) {
  return core_->terminate(id, grace, reason);
}

}  // namespace keel
