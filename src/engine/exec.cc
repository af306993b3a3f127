#include "exec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

namespace keel {
namespace {

// Everything below runs in the forked child, which has one thread and will exec or _exit.

void set_env(const char* name, const std::string& value) {
  ::setenv(name, value.c_str(), 1);
}

// The address part of an IP endpoint, as tcpserver writes it (no brackets, no port).
std::string ip_text(const Endpoint& ep) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (ep.family() == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(ep.sockaddr_ptr())->sin_addr, buf,
                sizeof buf);
  else if (ep.family() == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(ep.sockaddr_ptr())->sin6_addr, buf,
                sizeof buf);
  return buf;
}

void set_ucspi_env(const ChildContext& ctx) {
  // Names a program might otherwise inherit from a tcpserver that started keel itself.
  for (const char* stale : {"TCPLOCALHOST", "TCPREMOTEHOST", "TCPREMOTEINFO"}) ::unsetenv(stale);
  if (!ctx.local.is_unix()) {
    set_env("PROTO", "TCP");
    set_env("TCPREMOTEIP", ip_text(ctx.peer));
    set_env("TCPREMOTEPORT", std::to_string(ctx.peer.port()));
    set_env("TCPLOCALIP", ip_text(ctx.local));
    set_env("TCPLOCALPORT", std::to_string(ctx.local.port()));
    return;
  }
  set_env("PROTO", "UNIX");
  set_env("UNIXLOCALPATH", ctx.local.unix_path());
  set_env("UNIXLOCALPID", std::to_string(ctx.server_pid));
  set_env("UNIXLOCALUID", std::to_string(::getuid()));
  set_env("UNIXLOCALGID", std::to_string(::getgid()));
  if (ctx.peer_cred) {
    set_env("UNIXREMOTEPID", std::to_string(ctx.peer_cred->pid));
    // ucspi-unix's names, and the plain spellings for scripts written against those.
    set_env("UNIXREMOTEEUID", std::to_string(ctx.peer_cred->uid));
    set_env("UNIXREMOTEEGID", std::to_string(ctx.peer_cred->gid));
    set_env("UNIXREMOTEUID", std::to_string(ctx.peer_cred->uid));
    set_env("UNIXREMOTEGID", std::to_string(ctx.peer_cred->gid));
  }
}

// A copy of fd at 3 or above: dup2() onto 0..2 below must never find its source already there
// (dup2 of a descriptor onto itself would keep its close-on-exec flag).
int above_stdio(int fd) {
  return fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

[[noreturn]] void run_program(const ExecOptions& o, const ChildContext& ctx) {
  // keel blocks SIGINT/SIGTERM in its threads and ignores SIGPIPE; the mask and ignored signals
  // survive exec, and a program expects the defaults (a shell pipeline must die of SIGPIPE).
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);  // EINVAL for KILL/STOP: fine

  int sock = above_stdio(ctx.socket_fd);
  // Programs expect blocking descriptors. O_NONBLOCK lives on the shared open file, so this
  // also changes the parent's copy, which only ever asks it for TCP_INFO.
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) & ~O_NONBLOCK);
  int err = -1;
  switch (o.stderr_mode) {
    case ExecStderr::log: err = above_stdio(ctx.stderr_fd); break;
    case ExecStderr::client: err = sock; break;
    case ExecStderr::null: err = ::open("/dev/null", O_WRONLY | O_CLOEXEC); break;
  }
  if (sock < 0 || err < 0 || ::dup2(sock, 0) < 0 || ::dup2(sock, 1) < 0 || ::dup2(err, 2) < 0)
    ::_exit(kExecCannotRun);
  // Nothing else of the server's reaches the program: not listeners, not other clients.
  ::close_range(3, ~0U, 0);

  set_ucspi_env(ctx);
  std::vector<char*> argv;
  for (const std::string& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  int e = errno;
  std::string why = "keel exec: " + o.argv[0] + ": " + ::strerror(e) + "\n";
  [[maybe_unused]] ssize_t n = ::write(2, why.data(), why.size());
  ::_exit(e == ENOENT ? kExecNotFound : kExecCannotRun);
}

}  // namespace

ExecEngine::ExecEngine(ProcessCoreOptions core, ExecOptions exec) {
  configure_exec(core, std::move(exec));
  core_ = std::make_unique<ProcessCore>(std::move(core));
}

bool ExecEngine::close(ConnectionId id, std::string_view reason) {
  return core_->kill(id, SIGKILL, reason);
}

// No last line can reach the client (the program owns the socket): SIGTERM lets the program
// finish its own way, SIGKILL follows after grace.
bool ExecEngine::close_gracefully(ConnectionId id, std::string_view, std::string_view reason,
                                  std::chrono::milliseconds grace) {
  return core_->terminate(id, grace, reason);
}

void configure_exec(ProcessCoreOptions& core, ExecOptions exec) {
  core.capture_stderr = exec.stderr_mode == ExecStderr::log;
  core.child_main = [o = std::move(exec)](const ChildContext& ctx) { run_program(o, ctx); };
}

}  // namespace keel
