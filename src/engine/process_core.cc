#include "process_core.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "keel/error.h"

namespace keel {
namespace {

constexpr std::chrono::milliseconds kAcceptBackoff{100};
constexpr std::chrono::milliseconds kKillWait{5000};
// Longer stderr lines are passed on in pieces of this size, so a child cannot grow our memory.
constexpr size_t kMaxStderrLine = 4096;

int open_reserve() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

// glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++ callers; the system call is simple.
int pidfd_open(int pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// The group first (the programs the child started), the child itself if it left the group.
void signal_group(int pid, int signal_number) {
  if (::kill(-pid, signal_number) != 0) ::kill(pid, signal_number);
}

}  // namespace

struct ProcessCore::Listener final : IoHandler {
  Listener(ProcessCore& core, Socket s) : core(core), socket(std::move(s)) {}
  void handle_events(uint32_t) override { core.on_listener_ready(*this); }
  ProcessCore& core;
  Socket socket;
};

struct ProcessCore::Child {
  // pidfd readable = the child exited; pipe readable = stderr output.
  struct Exit final : IoHandler {
    explicit Exit(Child& c) : child(c) {}
    void handle_events(uint32_t) override {
      if (!child.reaped) child.core.reap(child.info.pid);
    }
    Child& child;
  };
  struct Stderr final : IoHandler {
    explicit Stderr(Child& c) : child(c) {}
    void handle_events(uint32_t) override {
      if (!child.reaped) child.core.read_stderr(child, false);
    }
    Child& child;
  };

  explicit Child(ProcessCore& c) : core(c) {}
  ~Child() {
    if (pidfd >= 0) ::close(pidfd);
    if (stderr_fd >= 0) ::close(stderr_fd);
  }

  ProcessCore& core;
  ChildInfo info;
  int pidfd = -1;
  int stderr_fd = -1;   // read end, non-blocking
  std::string partial;  // stderr bytes after the last newline
  Socket socket;        // the parent's copy, kept only for the idle clock
  std::string why;      // set when the core killed it
  bool reaped = false;
  Exit exit_handler{*this};
  Stderr stderr_handler{*this};
};

ProcessCore::ProcessCore(ProcessCoreOptions options)
    : options_(std::move(options)), loop_(pool_.loop(0)) {}

ProcessCore::~ProcessCore() {
  stop();
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void ProcessCore::start() {
  if (started_) return;
  if (options_.listen.empty()) throw Error("server: no endpoint to listen on");
  for (const Endpoint& ep : options_.listen)
    if (options_.idle_timeout.count() > 0 && ep.is_unix())
      throw Error("idle timeout on " + ep.to_string() +
                  ": Unix sockets have no kernel clock of the last byte (TCP_INFO); use a TCP "
                  "endpoint or no timeout");
  std::vector<Socket> sockets;
  for (const Endpoint& ep : options_.listen) {
    Socket s = Socket::listen_on(ep, options_.socket);
    if (ep.is_unix() && options_.unix_mode &&
        ::chmod(ep.unix_path().c_str(), options_.unix_mode) != 0)
      throw_system_error("chmod", ep.to_string(), errno);
    bound_.push_back(ep.is_unix() ? ep : s.local_endpoint());
    sockets.push_back(std::move(s));
  }
  for (Socket& s : sockets) listeners_.push_back(std::make_unique<Listener>(*this, std::move(s)));
  reserve_fd_ = open_reserve();
  pool_.start();
  started_ = true;
  pool_.run_on_and_wait(loop_, [this] {
    update_listening();
    if (options_.idle_timeout.count() > 0) {
      // A quarter of the timeout, within [50 ms, 1 s]: kills land at most 25% late.
      auto every = std::clamp(options_.idle_timeout / 4, std::chrono::milliseconds(50),
                              std::chrono::milliseconds(1000));
      idle_timer_ = loop_.run_every(every, [this] { check_idle(); });
    }
  });
}

// Loop thread. Listen while there are listeners, no back-off, and room under the cap.
void ProcessCore::update_listening() {
  bool want = !listeners_.empty() && backoff_timer_ == 0 &&
              (options_.max_connections == 0 || child_count() < options_.max_connections);
  if (want == listening_) return;
  for (auto& l : listeners_) {
    if (want)
      loop_.watch(l->socket.fd(), EPOLLIN, l.get());
    else
      loop_.unwatch(l->socket.fd());
  }
  listening_ = want;
}

void ProcessCore::on_listener_ready(Listener& l) {
  // Bounded per wake-up; stops as soon as the cap is reached (update_listening clears it).
  for (int i = 0; i < 64 && listening_; ++i) {
    int fd = ::accept4(l.socket.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      spawn(fd);
      update_listening();
      continue;
    }
    int err = errno;
    if (err == EAGAIN) return;
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    if ((err == EMFILE || err == ENFILE)) {
      fd_exhaustion_.fetch_add(1, std::memory_order_relaxed);
      if (reserve_fd_ >= 0) {  // shed one pending client so it sees a close, not a hang
        ::close(reserve_fd_);
        int shed = ::accept4(l.socket.fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (shed >= 0) ::close(shed);
        reserve_fd_ = open_reserve();
      }
    }
    // Resource trouble (descriptors, memory): pause instead of spinning on a ready listener.
    if (backoff_timer_ == 0) {
      backoff_timer_ = loop_.run_after(kAcceptBackoff, [this] {
        backoff_timer_ = 0;
        if (reserve_fd_ < 0) reserve_fd_ = open_reserve();
        update_listening();
      });
      update_listening();
    }
    return;
  }
}

void ProcessCore::spawn(int fd) {
  Socket socket(fd);
  ChildContext ctx;
  try {
    socket.apply_connection_options(options_.socket);
  } catch (const Error&) {
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ctx.id = ConnectionId::from_value(next_id_++);
  ctx.socket_fd = fd;
  ctx.peer = socket.peer_endpoint();
  ctx.local = socket.local_endpoint();
  if (ctx.local.is_unix()) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) ctx.peer_cred = cred;
  }
  int err_pipe[2] = {-1, -1};
  if (options_.capture_stderr && ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    return;  // the socket closes: the client sees the refusal at once
  }
  int pid = ::fork();
  if (pid == 0) {
    // The child: only this thread exists now. Lead a process group of our own so signals for
    // this connection reach everything it starts.
    ::setpgid(0, 0);
    if (err_pipe[0] >= 0) ::close(err_pipe[0]);
    ctx.stderr_fd = err_pipe[1];
    if (options_.child_main) options_.child_main(ctx);
    ::_exit(127);
  }
  if (err_pipe[1] >= 0) ::close(err_pipe[1]);
  if (pid < 0) {
    if (err_pipe[0] >= 0) ::close(err_pipe[0]);
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ::setpgid(pid, pid);  // also here, so a kill right after fork finds the group (may race: ok)
  accepted_.fetch_add(1, std::memory_order_relaxed);
  auto child = std::make_unique<Child>(*this);
  child->info = ChildInfo{ctx.id, pid, ctx.peer, std::chrono::steady_clock::now()};
  child->pidfd = pidfd_open(pid);
  child->stderr_fd = err_pipe[0];
  if (child->stderr_fd >= 0) ::fcntl(child->stderr_fd, F_SETFL, O_NONBLOCK);
  if (options_.idle_timeout.count() > 0) child->socket = std::move(socket);
  if (child->pidfd < 0) {
    // Only when someone else reaps our children (SIGCHLD ignored): nothing left to track.
    if (options_.on_exit) options_.on_exit(child->info, -1, "");
    return;
  }
  loop_.watch(child->pidfd, EPOLLIN, &child->exit_handler);
  if (child->stderr_fd >= 0) loop_.watch(child->stderr_fd, EPOLLIN, &child->stderr_handler);
  std::lock_guard lock(mutex_);
  children_.emplace(pid, std::move(child));
}

void ProcessCore::reap(int pid) {
  std::unique_ptr<Child> child;
  int status = -1;
  {
    // waitpid and erase under the lock: kill() from another thread, holding it, then always
    // signals a pid that is still ours (not yet reaped, so not reusable).
    std::lock_guard lock(mutex_);
    int r;
    do r = ::waitpid(pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) return;  // not exited after all
    if (r < 0) status = -1;
    auto it = children_.find(pid);
    if (it == children_.end()) return;
    child = std::move(it->second);
    children_.erase(it);
    if (children_.empty()) idle_cv_.notify_all();
  }
  child->reaped = true;
  loop_.unwatch(child->pidfd);
  if (child->stderr_fd >= 0) read_stderr(*child, true);  // the rest, then closed
  if (options_.on_exit) options_.on_exit(child->info, status, child->why);
  // Events for its descriptors may still be queued in this turn: free it after the turn.
  Child* raw = child.release();
  loop_.defer([raw] { delete raw; });
  update_listening();
}

void ProcessCore::read_stderr(Child& c, bool final) {
  char buf[4096];
  // Bounded per call so one chatty child cannot starve accepting and reaping. When final (the
  // child is reaped), what a grandchild may still write after this is dropped.
  for (int i = 0; i < 16; ++i) {
    ssize_t n = ::read(c.stderr_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN && !final) return;
      final = true;  // EOF or an error: nothing more will come
      break;
    }
    c.partial.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = c.partial.find('\n', start)) != std::string::npos; start = nl + 1)
      emit_stderr(c, std::string_view(c.partial).substr(start, nl - start));
    c.partial.erase(0, start);
    for (; c.partial.size() >= kMaxStderrLine; c.partial.erase(0, kMaxStderrLine))
      emit_stderr(c, std::string_view(c.partial).substr(0, kMaxStderrLine));
  }
  if (!final) return;                                 // more to read on the next wake-up
  if (!c.partial.empty()) emit_stderr(c, c.partial);  // the last line had no newline
  c.partial.clear();
  // Unwatch before close: a child forked a moment ago may still hold this pipe's read end,
  // and epoll forgets a descriptor only when every copy of it is closed.
  loop_.unwatch(c.stderr_fd);
  ::close(c.stderr_fd);
  c.stderr_fd = -1;
}

void ProcessCore::emit_stderr(const Child& c, std::string_view line) {
  if (options_.on_stderr_line) options_.on_stderr_line(c.info, line);
}

void ProcessCore::check_idle() {
  auto limit = static_cast<uint32_t>(options_.idle_timeout.count());
  std::lock_guard lock(mutex_);
  for (auto& [pid, c] : children_) {
    if (!c->socket.valid() || !c->why.empty()) continue;
    tcp_info ti{};
    socklen_t len = sizeof ti;
    if (::getsockopt(c->socket.fd(), IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) continue;
    // Milliseconds since the last payload byte in each direction (ACKs do not count).
    if (std::min(ti.tcpi_last_data_recv, ti.tcpi_last_data_sent) < limit) continue;
    c->why = "idle timeout";
    signal_group(pid, SIGKILL);
  }
}

size_t ProcessCore::child_count() const {
  std::lock_guard lock(mutex_);
  return children_.size();
}

std::vector<ChildInfo> ProcessCore::children() const {
  std::lock_guard lock(mutex_);
  std::vector<ChildInfo> out;
  out.reserve(children_.size());
  for (auto& [pid, c] : children_) out.push_back(c->info);
  return out;
}

EngineStats ProcessCore::stats() const {
  EngineStats s;
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.accept_errors = accept_errors_.load(std::memory_order_relaxed);
  s.fd_exhaustion = fd_exhaustion_.load(std::memory_order_relaxed);
  s.active = s.processes = child_count();
  return s;
}

void ProcessCore::visit(const std::function<void(const ClientSnapshot&)>& fn) const {
  for (const ChildInfo& c : children()) {
    ClientSnapshot snap;
    snap.id = c.id;
    snap.peer = c.peer;
    snap.opened_at = c.opened_at;
    snap.pid = c.pid;
    fn(snap);
  }
}

bool ProcessCore::kill(ConnectionId id, int signal_number, std::string_view why) {
  std::lock_guard lock(mutex_);
  for (auto& [pid, c] : children_) {
    if (c->info.id == id) {
      if (c->why.empty()) c->why = why;
      signal_group(pid, signal_number);
      return true;
    }
  }
  return false;
}

bool ProcessCore::terminate(ConnectionId id, std::chrono::milliseconds grace,
                            std::string_view why) {
  if (!kill(id, SIGTERM, why)) return false;
  // Ids are never reused, so a late SIGKILL for a child that has exited finds nothing.
  loop_.post([this, id, grace] { loop_.run_after(grace, [this, id] { kill(id, SIGKILL); }); });
  return true;
}

void ProcessCore::signal_all(int signal_number, const char* why) {
  std::lock_guard lock(mutex_);
  for (auto& [pid, c] : children_) {
    if (c->why.empty()) c->why = why;
    signal_group(pid, signal_number);
  }
}

bool ProcessCore::wait_for_no_children(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_cv_.wait_for(lock, timeout, [this] { return children_.empty(); });
}

void ProcessCore::stop_accepting() {
  if (accepting_stopped_) return;  // the Unix paths may belong to a new server by now
  accepting_stopped_ = true;
  pool_.run_on_and_wait(loop_, [this] {
    if (listening_)
      for (auto& l : listeners_) loop_.unwatch(l->socket.fd());
    listening_ = false;
    listeners_.clear();
    if (backoff_timer_) loop_.cancel_timer(std::exchange(backoff_timer_, 0));
  });
  for (const Endpoint& ep : bound_)
    if (ep.is_unix()) ::unlink(ep.unix_path().c_str());
}

size_t ProcessCore::drain(std::chrono::milliseconds timeout) {
  stop_accepting();
  if (!started_) return 0;
  signal_all(SIGTERM, "drain");
  if (wait_for_no_children(timeout)) return 0;
  size_t left = child_count();
  signal_all(SIGKILL, "drain timeout");
  wait_for_no_children(kKillWait);
  return left;
}

void ProcessCore::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (started_) {
    stop_accepting();
    signal_all(SIGKILL, "stopped");
    wait_for_no_children(kKillWait);
    pool_.run_on_and_wait(loop_, [this] {
      if (idle_timer_) loop_.cancel_timer(std::exchange(idle_timer_, 0));
    });
  }
  pool_.stop();
}

}  // namespace keel
