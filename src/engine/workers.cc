// Why workers are re-executed (posix_spawn of /proc/self/exe) rather than forked: the supervisor
// has threads (its admin endpoint's loops, the supervisor thread), and a worker that dies must be
// replaced while they run. A fork of a threaded process may only call async-signal-safe
// functions until it execs (another thread may have held the allocator's or the logger's lock at
// the fork), so a forked worker could not safely build its reactor. Exec gives every worker, the
// first and the restarted alike, a fresh single-threaded start through the same code path;
// /proc/self/exe keeps them on the supervisor's own binary. The price is an exec per worker
// (milliseconds) and passing state explicitly: the worker re-parses the supervisor's command line
// plus a hidden --worker-slot, and reads the resolved ports from the shared table on fd 3.
#include "engine/workers.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "keel/error.h"

extern char** environ;

namespace keel {

using namespace std::chrono_literals;

struct WorkersEngine::Child {
  pid_t pid = 0;  // 0: not running
  int pidfd = -1;
  Clock::time_point started;
  bool restart_pending = false;
  Clock::time_point restart_at;
  std::chrono::milliseconds backoff{0};
  bool term_sent = false;
  bool kill_sent = false;
};

namespace {

// A worker that dies sooner than this after starting is "dying quickly": its restarts back off
// from kFirstBackoff, doubling up to kMaxBackoff, instead of spinning on a broken setup.
constexpr auto kQuickDeath = 5s;
constexpr auto kFirstBackoff = 100ms;
constexpr auto kMaxBackoff = 10s;

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")";
  return "ended (wait status " + std::to_string(status) + ")";
}

// Bound with SO_REUSEPORT like the workers' listeners, so they can join the port; never
// listening, so the kernel never queues a connection on it.
Socket reserve_port(const Endpoint& ep) {
  Socket s = Socket::stream_for(ep);
  s.set_reuse_addr(true);
  s.set_reuse_port(true);
  if (ep.is_ipv6()) {
    int on = 1;  // as Socket::listen_on: [::]:port is IPv6 only
    ::setsockopt(s.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  if (::bind(s.fd(), ep.sockaddr_ptr(), ep.sockaddr_len()) != 0)
    throw_system_error("bind", ep.to_string(), errno);
  return s;
}

}  // namespace

WorkersEngine::WorkersEngine(WorkersOptions options, Service& service)
    : options_(std::move(options)), service_(service) {
  if (options_.workers == 0) throw Error("workers: need at least one worker");
  if (options_.listen.empty()) throw Error("workers: no endpoint to listen on");
  for (const Endpoint& ep : options_.listen)
    if (ep.is_unix())
      throw Error(ep.to_string() + ": --workers needs TCP endpoints (worker processes share a " +
                  "port with SO_REUSEPORT, which Unix sockets do not have)");
  if (!options_.worker_argv) throw Error("workers: no worker command");
}

WorkersEngine::~WorkersEngine() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void WorkersEngine::start() {
  if (thread_.joinable() || stopping_) return;
  for (const Endpoint& ep : options_.listen) {
    reserved_.push_back(reserve_port(ep));
    bound_.push_back(reserved_.back().local_endpoint());
  }
  slots_ = WorkerSlots::create(options_.workers, bound_);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw_system_error("eventfd", "workers", errno);
  children_.resize(options_.workers);
  kill_at_ns_ = std::numeric_limits<int64_t>::max();
  // Every worker is spawned (and reaped) by this one thread: PR_SET_PDEATHSIG in a worker fires
  // when the thread that spawned it ends, and this thread outlives all of them.
  thread_ = std::jthread([this] { supervise(); });
  std::unique_lock lock(start_mutex_);
  start_cv_.wait(lock, [this] { return start_done_; });
  if (!start_error_.empty()) {
    std::string error = start_error_;
    lock.unlock();
    finish();
    throw Error(error);
  }
}

void WorkersEngine::supervise() {
  auto report_start = [this](std::string error) {
    std::lock_guard lock(start_mutex_);
    if (start_done_) return;
    start_error_ = std::move(error);
    start_done_ = true;
    start_cv_.notify_all();
  };
  bool starting = true;
  const Clock::time_point start_deadline = Clock::now() + options_.start_timeout;
  for (size_t i = 0; i < children_.size() && !stopping_; ++i)
    if (!spawn(i)) {
      report_start("workers: cannot start worker " + std::to_string(i));
      request_stop(Clock::now());
    }
  for (;;) {
    Clock::time_point now = Clock::now();
    if (starting && !stopping_) {
      bool all_ready = std::all_of(children_.begin(), children_.end(), [&](const Child& c) {
        size_t slot = static_cast<size_t>(&c - children_.data());
        return c.pid != 0 && slots_.slot(slot).ready_pid.load() == static_cast<uint64_t>(c.pid);
      });
      if (all_ready) {
        starting = false;
        report_start({});
      } else if (now >= start_deadline) {
        report_start("workers: not every worker was listening within " +
                     std::to_string(options_.start_timeout.count() / 1000) + " s");
        request_stop(now);
      }
    }
    bool stopping = stopping_.load();
    Clock::time_point kill_at{Clock::duration(kill_at_ns_.load())};
    bool any_alive = false;
    std::optional<Clock::time_point> next_timer;
    for (size_t i = 0; i < children_.size(); ++i) {
      Child& c = children_[i];
      if (stopping) {
        c.restart_pending = false;
        if (c.pid && !c.term_sent) ::kill(c.pid, SIGTERM);
        if (c.pid) c.term_sent = true;
        if (c.pid && !c.kill_sent && now >= kill_at) {
          killed_active_ += slots_.slot(i).active.load();
          ::kill(c.pid, SIGKILL);
          c.kill_sent = true;
        }
      } else if (c.restart_pending && now >= c.restart_at) {
        c.restart_pending = false;
        if (spawn(i)) {
          slots_.slot(i).restarts.fetch_add(1);
          spdlog::info("worker {} restarted as pid {}", i, c.pid);
        }
      }
      any_alive = any_alive || c.pid != 0;
      if (c.restart_pending && (!next_timer || c.restart_at < *next_timer))
        next_timer = c.restart_at;
    }
    if (stopping && !any_alive) break;
    if (stopping && kill_at > now && (!next_timer || kill_at < *next_timer)) next_timer = kill_at;

    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    std::vector<size_t> slot_of;
    for (size_t i = 0; i < children_.size(); ++i)
      if (children_[i].pid) {
        fds.push_back({children_[i].pidfd, POLLIN, 0});
        slot_of.push_back(i);
      }
    int timeout_ms = -1;
    if (next_timer)
      timeout_ms = static_cast<int>(std::clamp<int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(*next_timer - now).count(), 0, 60'000));
    if (starting) timeout_ms = timeout_ms < 0 ? 10 : std::min(timeout_ms, 10);  // ready flags
    ::poll(fds.data(), fds.size(), timeout_ms);
    uint64_t ignored;
    while (::read(wake_fd_, &ignored, sizeof ignored) > 0) {
    }
    now = Clock::now();
    for (size_t k = 1; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      size_t slot = slot_of[k - 1];
      pid_t pid = children_[slot].pid;
      std::string how = reap(slot, now);
      if (how.empty()) continue;
      if (starting && !stopping_) {
        report_start("workers: worker " + std::to_string(slot) + " (pid " + std::to_string(pid) +
                     ") " + how + " while starting");
        request_stop(now);
      }
    }
  }
  report_start("workers: stopped while starting");
}

bool WorkersEngine::spawn(size_t slot) {
  Child& c = children_[slot];
  std::vector<std::string> args = options_.worker_argv(slot);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  WorkerSlot& s = slots_.slot(slot);
  s.ready_pid = 0;
  s.accepted = 0;
  s.active = 0;
  s.rejected_over_cap = 0;
  s.accept_errors = 0;
  s.fd_exhaustion = 0;

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  // The table lands on kWorkerSlotsFd; dup2 clears close-on-exec on the copy only.
  posix_spawn_file_actions_adddup2(&actions, slots_.fd(), kWorkerSlotsFd);
  // The supervisor blocks SIGINT/SIGTERM (it takes them with sigwait); a worker starts with
  // nothing blocked and blocks what it handles itself.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, options_.executable.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);

  Clock::time_point now = Clock::now();
  int pidfd = rc == 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)) : -1;
  if (rc == 0 && pidfd < 0) {  // cannot watch it: do not leave it running unwatched
    rc = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  if (rc != 0) {
    c.backoff = c.backoff.count() ? std::min(c.backoff * 2, std::chrono::milliseconds(kMaxBackoff))
                                  : std::chrono::milliseconds(kFirstBackoff);
    spdlog::error("cannot start worker {}: {}; retrying in {:.1f} s", slot, errno_text(rc),
                  c.backoff.count() / 1000.0);
    c.restart_pending = true;
    c.restart_at = now + c.backoff;
    return false;
  }
  ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  c.pid = pid;
  c.pidfd = pidfd;
  c.started = now;
  c.term_sent = c.kill_sent = false;
  s.pid = static_cast<uint64_t>(pid);
  return true;
}

std::string WorkersEngine::reap(size_t slot, Clock::time_point now) {
  Child& c = children_[slot];
  int status = 0;
  if (::waitpid(c.pid, &status, WNOHANG) != c.pid) return {};
  ::close(c.pidfd);
  pid_t pid = std::exchange(c.pid, 0);
  c.pidfd = -1;
  // Its counters go with it: the total keeps what it accepted, its row starts again.
  WorkerSlot& s = slots_.slot(slot);
  retired_accepted_ += s.accepted.exchange(0);
  s.pid = 0;
  s.ready_pid = 0;
  s.active = 0;
  std::string how = describe_exit(status);
  double lived_s = std::chrono::duration<double>(now - c.started).count();
  if (stopping_) {
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      spdlog::warn("worker {} (pid {}) {} while stopping", slot, pid, how);
    return how;
  }
  if (now - c.started < kQuickDeath)
    c.backoff = c.backoff.count() ? std::min(c.backoff * 2, std::chrono::milliseconds(kMaxBackoff))
                                  : std::chrono::milliseconds(kFirstBackoff);
  else
    c.backoff = 0ms;
  c.restart_pending = true;
  c.restart_at = now + c.backoff;
  spdlog::warn("worker {} (pid {}) {} after {:.1f} s; restarting{}", slot, pid, how, lived_s,
               c.backoff.count() ? fmt::format(" in {:.1f} s (it died within {} s of starting)",
                                               c.backoff.count() / 1000.0, kQuickDeath.count())
                                 : std::string());
  return how;
}

void WorkersEngine::request_stop(Clock::time_point kill_at) {
  int64_t want = kill_at.time_since_epoch().count();
  int64_t have = kill_at_ns_.load();
  while (want < have && !kill_at_ns_.compare_exchange_weak(have, want)) {
  }
  stopping_ = true;
  wake();
}

void WorkersEngine::wake() {
  uint64_t one = 1;
  if (wake_fd_ < 0) return;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void WorkersEngine::finish() {
  if (thread_.joinable()) thread_.join();
  reserved_.clear();
}

void WorkersEngine::stop_accepting() {
  if (!thread_.joinable()) return;
  request_stop(Clock::time_point::max());
}

size_t WorkersEngine::drain(std::chrono::milliseconds timeout) {
  stop_accepting();
  request_stop(Clock::now() + timeout + options_.kill_margin);
  finish();
  return killed_active_.load();
}

void WorkersEngine::stop() {
  request_stop(Clock::now());
  finish();
}

EngineStats WorkersEngine::stats() const {
  EngineStats s;
  s.accepted = retired_accepted_.load();
  for (size_t i = 0; i < slots_.size(); ++i) {
    const WorkerSlot& w = slots_.slot(i);
    WorkerRow row{w.pid.load(), w.restarts.load(), w.accepted.load(), w.active.load()};
    s.accepted += row.accepted;
    s.active += row.active;
    s.rejected_over_cap += w.rejected_over_cap.load();
    s.accept_errors += w.accept_errors.load();
    s.fd_exhaustion += w.fd_exhaustion.load();
    s.processes += row.pid ? 1 : 0;
    s.workers.push_back(row);
  }
  return s;
}

size_t WorkersEngine::connection_count() const noexcept {
  size_t n = 0;
  for (size_t i = 0; i < slots_.size(); ++i) n += slots_.slot(i).active.load();
  return n;
}

}  // namespace keel
