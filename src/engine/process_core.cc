#include "process_core.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "keel/error.h"
#include "process_core_parts.h"

namespace keel {
namespace {

constexpr std::chrono::milliseconds kAcceptBackoff{100};
constexpr std::chrono::milliseconds kKillWait{5000};
// Longer stderr lines are passed on in pieces of this size, so a child cannot grow our memory.
constexpr size_t kMaxStderrLine = 4096;

int open_reserve() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

// glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++ callers; the system calls are simple.
int pidfd_open(int pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
int pidfd_send_signal(int pidfd, int signal_number) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal_number, nullptr, 0));
}

}  // namespace

struct ProcessCore::Listener final : IoHandler {
  Listener(ProcessCore& core, Socket s) : core(core), socket(std::move(s)) {}
  void handle_events(uint32_t) override { core.on_listener_ready(*this); }
  ProcessCore& core;
  Socket socket;
};

ProcessCore::ProcessCore(ProcessCoreOptions options)
    : options_(std::move(options)), loop_(pool_.loop(0)) {
  if (options_.max_connections_per_ip)
    per_address_ = std::make_unique<PerAddressLimit>(options_.max_connections_per_ip);
}

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
  // Before our loop thread exists: in a program that has no other thread yet, the spawner's
  // fork copies no lock held by anyone.
  SpawnerHandle spawner = start_spawner(options_.child_main);
  spawner_pid_ = spawner.pid;
  channel_ = std::make_unique<Channel>(*this, spawner.fd);
  reserve_fd_ = open_reserve();
  pool_.start();
  started_ = true;
  pool_.run_on_and_wait(loop_, [this] {
    loop_.watch(channel_->fd, EPOLLIN, channel_.get());
    update_listening();
    if (options_.idle_timeout.count() > 0) {
      // A quarter of the timeout, within [50 ms, 1 s]: kills land at most 25% late.
      auto every = std::clamp(options_.idle_timeout / 4, std::chrono::milliseconds(50),
                              std::chrono::milliseconds(1000));
      idle_timer_ = loop_.run_every(every, [this] { check_idle(); });
    }
  });
}

// Loop thread. Listen while there are listeners and a spawner, no back-off, and room under the
// cap.
void ProcessCore::update_listening() {
  bool want = !listeners_.empty() && channel_->fd >= 0 && backoff_timer_ == 0 &&
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
      if (options_.on_refused) options_.on_refused(Refusal::fd_exhaustion);
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

size_t ProcessCore::child_count() const {
  std::lock_guard lock(mutex_);
  return children_.size();
}

std::vector<ChildInfo> ProcessCore::children() const {
  std::unique_lock lock(mutex_);
  uint64_t wanted = last_requested_;
  answered_cv_.wait_for(lock, kKillWait, [&] { return last_answered_ >= wanted; });
  std::vector<ChildInfo> out;
  out.reserve(children_.size());
  for (auto& [id, c] : children_)
    if (c->info.pid != 0) out.push_back(c->info);
  return out;
}

EngineStats ProcessCore::stats() const {
  EngineStats s;
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.accept_errors = accept_errors_.load(std::memory_order_relaxed);
  s.fd_exhaustion = fd_exhaustion_.load(std::memory_order_relaxed);
  s.rejected_per_ip = rejected_per_ip_.load(std::memory_order_relaxed);
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

// The spawner delivers the signal: only it knows whether the child is still unreaped (so its
// pid and group cannot have been reused), and it signals the whole group.
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

size_t ProcessCore::drain(std::chrono::milliseconds timeout, bool signal_children) {
  stop_accepting();
  if (!started_) return 0;
  if (signal_children) signal_all(SIGTERM, "drain");
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
      if (channel_->fd >= 0) loop_.unwatch(channel_->fd);
      channel_->close();  // EOF: the spawner exits
    });
  }
  pool_.stop();
  wait_for_spawner();
}

// The spawner is our one child: reap it, so stop() leaves no zombie. It exits at the channel's
// EOF; a spawner stuck past kKillWait is killed.
void ProcessCore::wait_for_spawner() {
  if (spawner_pid_ < 0) return;
  int pid = std::exchange(spawner_pid_, -1);
  int pidfd = pidfd_open(pid);
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int n;
    do n = ::poll(&p, 1, static_cast<int>(kKillWait.count()));
    while (n < 0 && errno == EINTR);
    if (n == 0) pidfd_send_signal(pidfd, SIGKILL);
    ::close(pidfd);
  }
  int status, r;
  do r = ::waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
}

}  // namespace keel
