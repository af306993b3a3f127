// ClientSwarm: many idle TCP connections held by a forked child process of the test, for scale
// tests whose connection count is beyond one process's open-file limit. The child opens its
// connections in batches (each batch proven by an echo before the next starts, so the server's
// accept queue never overflows), checks every connection echoes once more when all are open,
// reports, and holds them until the parent lets go.
// Thread safety: construct from a single-threaded test process (it forks); one owner.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"

namespace keel::test {

class ClientSwarm {
 public:
  // Forks the child; it waits for go(port). source: a loopback address of its own
  // (127.0.0.x), so each swarm has the whole ephemeral port range towards the server's port.
  ClientSwarm(std::string source, size_t connections) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) || ::pipe2(from_child, O_CLOEXEC)) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test holding 10,000 sockets
      ::close(to_child[1]);
      ::close(from_child[0]);
      ::_exit(run_child(source, connections, to_child[0], from_child[1]));
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    control_.reset(to_child[1]);
    report_.reset(from_child[0]);
  }
  ~ClientSwarm() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  void go(int port) {
    std::string line = std::to_string(port) + "\n";
    [[maybe_unused]] ssize_t n = ::write(control_.get(), line.data(), line.size());
  }

  // The child's report line ("ok N" or "fail: why"); empty on timeout.
  std::string report(std::chrono::milliseconds timeout) {
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char c;
    while (line.empty() || line.back() != '\n') {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !wait_ready(report_.get(), POLLIN, left)) return line;
      if (::read(report_.get(), &c, 1) != 1) return line;
      line += c;
    }
    line.pop_back();
    return line;
  }

  // Lets the child close its connections and exit; returns its exit status.
  int release() {
    // A byte, not EOF: the swarms forked later hold copies of this pipe's write end.
    [[maybe_unused]] ssize_t n = ::write(control_.get(), "x", 1);
    control_.reset();
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  static constexpr size_t kBatch = 500;

  // Child side: what it says goes to report_fd; returns the exit status.
  static int run_child(const std::string& source, size_t n, int control_fd, int report_fd) {
    auto fail = [&](const std::string& why) {
      std::string line = "fail: " + why + "\n";
      [[maybe_unused]] ssize_t w = ::write(report_fd, line.data(), line.size());
      return 1;
    };
    char buf[32] = {};
    if (!wait_ready(control_fd, POLLIN, std::chrono::seconds(60)) ||
        ::read(control_fd, buf, sizeof buf - 1) <= 0)
      return fail("no port");
    sockaddr_in server{}, local{};
    server.sin_family = local.sin_family = AF_INET;
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server.sin_port = htons(static_cast<uint16_t>(std::atoi(buf)));
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
    std::vector<Fd> conns;
    conns.reserve(n);
    while (conns.size() < n) {
      size_t first = conns.size(), last = std::min(n, first + kBatch);
      for (size_t i = first; i < last; ++i) {
        Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        int on = 1;  // the port is chosen at connect, per destination: no bind-time scan
        ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
          return fail("bind " + source + ": " + std::strerror(errno));
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&server), sizeof server) != 0 &&
            errno != EINPROGRESS)
          return fail("connect #" + std::to_string(i) + ": " + std::strerror(errno));
        conns.push_back(std::move(fd));
      }
      if (auto why = echo_each(epoll.get(), conns, first, last))
        return fail("batch at #" + std::to_string(first) + ": " + *why);
    }
    if (auto why = echo_each(epoll.get(), conns, 0, n)) return fail("all open: " + *why);
    std::string ok = "ok " + std::to_string(n) + "\n";
    [[maybe_unused]] ssize_t w = ::write(report_fd, ok.data(), ok.size());
    [[maybe_unused]] ssize_t r = ::read(control_fd, buf, 1);  // release()
    return 0;
  }

  // Sends one byte on conns[first, last) (as each becomes writable, i.e. connected) and waits
  // for every one to come back. nullopt on success, else why not.
  static std::optional<std::string> echo_each(int epoll, std::vector<Fd>& conns, size_t first,
                                              size_t last) {
    for (size_t i = first; i < last; ++i) {
      epoll_event ev{EPOLLOUT, {.u64 = i}};
      ::epoll_ctl(epoll, EPOLL_CTL_ADD, conns[i].get(), &ev);
    }
    size_t pending = last - first;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    epoll_event events[256];
    while (pending > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return std::to_string(pending) + " of " + std::to_string(last - first) + " silent";
      int n = ::epoll_wait(epoll, events, 256, static_cast<int>(left.count()));
      for (int k = 0; k < n; ++k) {
        size_t i = events[k].data.u64;
        int fd = conns[i].get();
        if (events[k].events & EPOLLOUT) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err) return "connect #" + std::to_string(i) + ": " + std::strerror(err);
          if (::send(fd, "k", 1, MSG_NOSIGNAL) != 1)
            return "send #" + std::to_string(i) + ": " + std::strerror(errno);
          epoll_event in{EPOLLIN, {.u64 = i}};
          ::epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &in);
        } else {
          char c;
          if (::recv(fd, &c, 1, 0) != 1 || c != 'k')
            return "echo #" + std::to_string(i) + ": closed or wrong byte";
          ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
          --pending;
        }
      }
    }
    return std::nullopt;
  }

  pid_t pid_ = -1;
  Fd control_;
  Fd report_;
};

}  // namespace keel::test
