#include "keel/engine/processes.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
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

// The child's view of the service: the same service, plus a signal when its one connection has
// closed (an eventfd the child's main thread waits on).
class LastConnection final : public Service {
 public:
  LastConnection(Service& inner, int closed_fd) : inner_(inner), closed_fd_(closed_fd) {}
  const char* name() const noexcept override { return inner_.name(); }
  void on_open(Server& s, const ConnectionInfo& info) override { inner_.on_open(s, info); }
  void on_data(Server& s, ConnectionId id, Buffer& in) override { inner_.on_data(s, id, in); }
  void on_peer_closed(Server& s, ConnectionId id) override { inner_.on_peer_closed(s, id); }
  void on_close(Server& s, ConnectionId id, const CloseReason& reason) override {
    inner_.on_close(s, id, reason);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(closed_fd_, &one, sizeof one);
  }
  Overflow overflow() const noexcept override { return inner_.overflow(); }
  bool connections_independent() const noexcept override { return true; }
  std::string overflow_line(size_t queued) const override { return inner_.overflow_line(queued); }

 private:
  Service& inner_;
  int closed_fd_;
};

constexpr int kSocketFd = 3;
// The parent's SIGKILL bounds a child's drain; this only keeps the wait finite on its own.
constexpr std::chrono::hours kChildDrainLimit{1};

// Runs in the forked child (one thread), a fork of the spawner, itself a fork of the parent at
// start(). No logging here: in a library user's program another thread may have held the
// logger's mutex when start() forked the spawner.
[[noreturn]] void serve_one(Service& service, const ServerOptions& parent,
                            const ChildContext& ctx) {
  // Keep the socket (at fd 3), stdin/out/err; nothing else (the spawner passes only the socket,
  // but a descriptor inherited without close-on-exec must not stay open here either).
  if (ctx.socket_fd != kSocketFd && ::dup3(ctx.socket_fd, kSocketFd, O_CLOEXEC) < 0) ::_exit(1);
  ::close_range(kSocketFd + 1, ~0U, 0);
  // SIGTERM (drain, kick) arrives through a signalfd; the rest of the mask is cleared.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::sigprocmask(SIG_SETMASK, &term, nullptr);
  int signal_fd = ::signalfd(-1, &term, SFD_CLOEXEC);
  int closed_fd = ::eventfd(0, EFD_CLOEXEC);
  if (signal_fd < 0 || closed_fd < 0) ::_exit(1);
  {
    ServerOptions options;  // no listen: the one connection is adopted
    options.socket = parent.socket;
    options.high_water_bytes = parent.high_water_bytes;
    LoopPool pool(1);
    LastConnection last(service, closed_fd);
    ReactorEngine engine(pool, std::move(options), last);
    try {
      engine.adopt(Socket(kSocketFd));
    } catch (const Error&) {
      ::_exit(1);
    }
    pool.start();
    pollfd fds[2] = {{closed_fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    for (;;) {
      int n = ::poll(fds, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || fds[0].revents) break;
      if (fds[1].revents) {
        engine.drain(kChildDrainLimit);
        break;
      }
    }
    engine.stop();
    pool.stop();
  }
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
  return core_->drain(timeout);
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
