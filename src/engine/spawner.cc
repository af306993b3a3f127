#include "spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <unordered_map>

#include "keel/error.h"

namespace keel {
namespace {

constexpr int kChannelFd = 3;  // the spawner's end, moved here so everything above can close
constexpr int kMaxFds = 2;

// What the spawner restores in each child, as the parent had it at start().
struct Inherited {
  struct sigaction sigchld {};
  char comm[17] = {};
  int server_pid = 0;
};

// Blocking: the parent never blocks on the channel and always reads it, so this waits only for
// the parent's loop to come round. False when the parent is gone.
bool send_event(const SpawnerEvent& event) {
  for (;;) {
    ssize_t n = ::send(kChannelFd, &event, sizeof event, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(sizeof event)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

// The forked child: never returns.
[[noreturn]] void become_child(const std::function<void(const ChildContext&)>& child_main,
                               const Inherited& inherited, int signal_fd, const SpawnRequest& r,
                               int socket_fd, int stderr_fd) {
  ::close(kChannelFd);
  ::close(signal_fd);
  // Lead a process group of our own, so signals for this connection reach everything it
  // starts and a terminal's Ctrl-C does not.
  ::setpgid(0, 0);
  ::sigaction(SIGCHLD, &inherited.sigchld, nullptr);
  ::prctl(PR_SET_NAME, inherited.comm);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ChildContext ctx;
  ctx.id = ConnectionId::from_value(r.id);
  ctx.socket_fd = socket_fd;
  ctx.stderr_fd = stderr_fd;
  ctx.peer = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&r.peer), r.peer_len);
  ctx.local = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&r.local), r.local_len);
  if (r.has_cred) ctx.peer_cred = r.cred;
  ctx.server_pid = inherited.server_pid;
  if (child_main) child_main(ctx);
  ::_exit(127);
}

// The group first (the programs the child started), the child itself if it left the group.
void signal_group(int pid, int signal_number) {
  if (::kill(-pid, signal_number) != 0) ::kill(pid, signal_number);
}

class Spawner {
 public:
  Spawner(const std::function<void(const ChildContext&)>& child_main, const Inherited& inherited,
          int signal_fd)
      : child_main_(child_main), inherited_(inherited), signal_fd_(signal_fd) {}

  [[noreturn]] void run() {
    pollfd fds[2] = {{kChannelFd, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
    for (;;) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        ::_exit(1);
      }
      if (fds[1].revents) on_signals();
      if (fds[0].revents && !on_request()) ::_exit(0);
    }
  }

 private:
  void on_signals() {
    signalfd_siginfo info[8];
    bool parent_gone = false;
    for (;;) {
      ssize_t n = ::read(signal_fd_, info, sizeof info);
      if (n <= 0) break;
      for (size_t i = 0; i < static_cast<size_t>(n) / sizeof info[0]; ++i)
        if (info[i].ssi_signo == SIGHUP && ::getppid() != inherited_.server_pid) parent_gone = true;
    }
    reap();
    // The parent-death signal (SIGHUP) also arrives when only the thread that called start()
    // ended; the parent process is gone only when we were re-parented.
    if (parent_gone) ::_exit(0);
  }

  // waitpid(-1) is safe here: every child of this process is one we forked.
  void reap() {
    for (;;) {
      int status = 0;
      int pid = ::waitpid(-1, &status, WNOHANG);
      if (pid < 0 && errno == EINTR) continue;
      if (pid <= 0) return;
      auto it = ids_.find(pid);
      if (it == ids_.end()) continue;
      uint64_t id = it->second;
      ids_.erase(it);
      pids_.erase(id);
      if (!send_event({SpawnerEvent::exited, pid, status, id})) ::_exit(0);
    }
  }

  // False at EOF or when the parent is gone.
  bool on_request() {
    SpawnRequest r;
    alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
    iovec iov{&r, sizeof r};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(kChannelFd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) return false;
    int fds[kMaxFds] = {-1, -1};
    int count = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (count < kMaxFds)
          fds[count++] = fd;
        else
          ::close(fd);
      }
    }
    if (n != static_cast<ssize_t>(sizeof r)) {
      for (int fd : fds)
        if (fd >= 0) ::close(fd);
      return true;  // not ours to understand: ignore it
    }
    switch (r.kind) {
      case SpawnRequest::spawn: return spawn(r, fds[0], fds[1]);
      case SpawnRequest::signal_one:
        if (auto it = pids_.find(r.id); it != pids_.end())
          signal_group(it->second, r.signal_number);
        return true;
      case SpawnRequest::signal_all:
        for (auto& [id, pid] : pids_) signal_group(pid, r.signal_number);
        return true;
    }
    return true;
  }

  bool spawn(const SpawnRequest& r, int socket_fd, int stderr_fd) {
    int pid = socket_fd < 0 ? -1 : ::fork();
    int err = pid < 0 ? (socket_fd < 0 ? EBADF : errno) : 0;
    if (pid == 0) become_child(child_main_, inherited_, signal_fd_, r, socket_fd, stderr_fd);
    if (socket_fd >= 0) ::close(socket_fd);
    if (stderr_fd >= 0) ::close(stderr_fd);
    if (pid < 0) return send_event({SpawnerEvent::spawn_failed, 0, err, r.id});
    ::setpgid(pid, pid);  // also here, so a signal right after fork finds the group
    pids_[r.id] = pid;
    ids_[pid] = r.id;
    return send_event({SpawnerEvent::spawned, pid, 0, r.id});
  }

  const std::function<void(const ChildContext&)>& child_main_;
  const Inherited& inherited_;
  int signal_fd_;
  std::unordered_map<uint64_t, int> pids_;  // unreaped children by connection id
  std::unordered_map<int, uint64_t> ids_;   // and by pid
};

[[noreturn]] void spawner_main(const std::function<void(const ChildContext&)>& child_main,
                               int channel, const Inherited& inherited) {
  // Die with the parent process (see on_signals for the thread caveat); the channel's EOF says
  // the same unless a fork of the parent without exec still holds the parent's end.
  ::prctl(PR_SET_PDEATHSIG, SIGHUP);
  if (::getppid() != inherited.server_pid) ::_exit(0);
  ::prctl(PR_SET_NAME, "keel-spawner");
  if (channel != kChannelFd && ::dup3(channel, kChannelFd, O_CLOEXEC) < 0) ::_exit(1);
  // Nothing of the parent's stays open here (listeners, clients, the parent's channel end):
  // a listener held by the spawner would outlive the server's stop_accepting().
  ::close_range(kChannelFd + 1, ~0U, 0);
  // Every signal waits (Ctrl-C at a terminal reaches our process group too: the spawner lives
  // as long as the parent's channel); SIGCHLD and SIGHUP are read from a signalfd.
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &dfl, nullptr);  // SIG_IGN would reap children without their status
  sigset_t watched;
  sigemptyset(&watched);
  sigaddset(&watched, SIGCHLD);
  sigaddset(&watched, SIGHUP);
  int signal_fd = ::signalfd(-1, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) ::_exit(1);
  Spawner(child_main, inherited, signal_fd).run();
}

}  // namespace

SpawnerHandle start_spawner(const std::function<void(const ChildContext&)>& child_main) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    throw_system_error("socketpair", "spawner channel", errno);
  Inherited inherited;
  ::sigaction(SIGCHLD, nullptr, &inherited.sigchld);
  ::prctl(PR_GET_NAME, inherited.comm);
  inherited.server_pid = ::getpid();
  int pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);
    spawner_main(child_main, sv[1], inherited);
  }
  int err = errno;
  ::close(sv[1]);
  if (pid < 0) {
    ::close(sv[0]);
    throw_system_error("fork", "spawner", err);
  }
  ::fcntl(sv[0], F_SETFL, O_NONBLOCK);
  return {pid, sv[0]};
}

int send_request(int fd, const SpawnRequest& request, const int* fds, int fd_count) {
  iovec iov{const_cast<SpawnRequest*>(&request), sizeof request};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))] = {};
  if (fd_count > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fd_count * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fd_count * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, fd_count * sizeof(int));
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(sizeof request)) return 0;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno : EIO;
  }
}

int read_event(int fd, SpawnerEvent& event) {
  for (;;) {
    ssize_t n = ::recv(fd, &event, sizeof event, 0);
    if (n == static_cast<ssize_t>(sizeof event)) return 1;
    if (n == 0) return 0;
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) errno = EIO;
    return -1;
  }
}

}  // namespace keel
