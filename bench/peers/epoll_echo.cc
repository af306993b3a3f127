// epoll_echo: the smallest single-threaded epoll echo server we could write, as the practical
// ceiling for a reactor in the peer comparison (bench/compare).
//
// Level-triggered epoll, non-blocking sockets, one 64 KiB read buffer for the whole process.
// Each readable event does one read(); the bytes are written straight back and only the part
// the kernel did not take is queued, with EPOLLOUT armed only while something is queued.
// A connection with more than 1 MiB queued stops being read until it drains, so memory stays
// bounded. Half-close: on EOF the queue is flushed, then the socket is closed.
// Same socket settings as keel: TCP_NODELAY on accepted sockets, listen backlog 4096.
//
// Usage: epoll_echo [--port N]   (N = 0, the default, lets the kernel choose)
// Prints "listening on 127.0.0.1:PORT" to stderr once listening.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kReadBytes = 64 * 1024;
constexpr size_t kHighWaterBytes = 1024 * 1024;
constexpr int kBacklog = 4096;

struct Conn {
  bool open = false;
  bool peer_closed = false;
  bool reading = true;
  std::string out;  // bytes the kernel has not taken yet, from out_off on
  size_t out_off = 0;
  size_t pending() const { return out.size() - out_off; }
};

int g_epoll = -1;
std::vector<Conn> g_conns;  // indexed by fd

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "epoll_echo: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int parse_port(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
      std::exit(2);
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "epoll_echo: bad port %d\n", port);
    std::exit(2);
  }
  return port;
}

void set_interest(int fd, const Conn& c) {
  epoll_event ev{};
  ev.events = (c.reading ? EPOLLIN : 0u) | (c.pending() > 0 ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (epoll_ctl(g_epoll, EPOLL_CTL_MOD, fd, &ev) != 0) die("epoll_ctl MOD");
}

void close_conn(int fd) {
  Conn& c = g_conns[static_cast<size_t>(fd)];
  epoll_ctl(g_epoll, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  c = Conn{};
}

// Sends what is queued. Returns false if the connection was closed.
bool flush(int fd, Conn& c) {
  while (c.pending() > 0) {
    ssize_t n = send(fd, c.out.data() + c.out_off, c.pending(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      close_conn(fd);
      return false;
    }
  }
  if (c.pending() == 0) {
    std::string().swap(c.out);  // give the memory back; idle connections hold none
    c.out_off = 0;
    if (c.peer_closed) {
      close_conn(fd);
      return false;
    }
  }
  return true;
}

void on_readable(int fd, Conn& c, char* buf) {
  ssize_t n = read(fd, buf, kReadBytes);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    close_conn(fd);
    return;
  }
  if (n == 0) {  // half-close: stop reading, flush what is queued, then close
    c.peer_closed = true;
    c.reading = false;
    if (!flush(fd, c)) return;
    set_interest(fd, c);
    return;
  }
  size_t len = static_cast<size_t>(n);
  size_t sent = 0;
  if (c.pending() == 0) {  // write directly; queue only the remainder
    ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      close_conn(fd);
      return;
    }
    if (w > 0) sent = static_cast<size_t>(w);
  }
  if (sent == len) return;  // the common case: nothing queued, interest unchanged
  bool was_pending = c.pending() > 0;
  if (c.out_off > 0 && c.out_off >= c.out.size() / 2) {  // compact before growing
    c.out.erase(0, c.out_off);
    c.out_off = 0;
  }
  c.out.append(buf + sent, len - sent);
  bool was_reading = c.reading;
  if (c.pending() > kHighWaterBytes) c.reading = false;
  if (!was_pending || was_reading != c.reading) set_interest(fd, c);
}

void on_writable(int fd, Conn& c) {
  if (!flush(fd, c)) return;
  if (c.pending() == 0) c.reading = !c.peer_closed;
  set_interest(fd, c);
}

void on_acceptable(int listen_fd) {
  for (;;) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror("epoll_echo: accept4");
      return;  // EMFILE etc.: level-triggered, retried next turn
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (static_cast<size_t>(fd) >= g_conns.size()) g_conns.resize(static_cast<size_t>(fd) + 1);
    g_conns[static_cast<size_t>(fd)] = Conn{};
    g_conns[static_cast<size_t>(fd)].open = true;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(g_epoll, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl ADD");
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = parse_port(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (listen(lfd, kBacklog) != 0) die("listen");
  socklen_t alen = sizeof addr;
  if (getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) die("getsockname");
  std::fprintf(stderr, "listening on 127.0.0.1:%u\n", unsigned{ntohs(addr.sin_port)});

  g_epoll = epoll_create1(EPOLL_CLOEXEC);
  if (g_epoll < 0) die("epoll_create1");
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.fd = lfd;
  if (epoll_ctl(g_epoll, EPOLL_CTL_ADD, lfd, &lev) != 0) die("epoll_ctl ADD listener");

  std::vector<char> buf(kReadBytes);
  std::vector<epoll_event> events(1024);
  for (;;) {
    int n = epoll_wait(g_epoll, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<size_t>(i)].data.fd;
      uint32_t ev = events[static_cast<size_t>(i)].events;
      if (fd == lfd) {
        on_acceptable(lfd);
        continue;
      }
      // A connection closed earlier in this batch cannot reappear later in it: each fd is
      // reported at most once per epoll_wait, and we only ever close the fd being handled.
      Conn& c = g_conns[static_cast<size_t>(fd)];
      if (!c.open) continue;
      if (ev & EPOLLERR) {
        close_conn(fd);
        continue;
      }
      if (ev & EPOLLOUT) {
        on_writable(fd, c);
        if (!c.open) continue;
      }
      if (ev & (EPOLLIN | EPOLLHUP)) {
        if (c.reading) {
          on_readable(fd, c, buf.data());
        } else if ((ev & EPOLLHUP) && !(ev & EPOLLOUT)) {
          close_conn(fd);  // both directions gone while paused: nothing more can be sent
        }
      }
    }
  }
}
