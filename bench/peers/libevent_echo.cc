// libevent_echo: a single-threaded echo server on libevent 2.1 bufferevents (Debian
// libevent-dev), for the peer comparison (bench/compare).
//
// One event_base (epoll backend), an evconnlistener and one socket bufferevent per connection.
// The read callback moves the whole input evbuffer onto the output evbuffer (chains move, bytes
// are not copied); libevent writes it when the socket is writable. Backpressure: above 1 MiB of
// queued output the connection stops reading; when the output drains it reads again.
// Half-close: on EOF the connection stops reading, flushes its output, then is freed (closed).
// Same socket settings as keel: TCP_NODELAY on accepted sockets, listen backlog 4096.
//
// Usage: libevent_echo [--port N]   (N = 0, the default, lets the kernel choose)
// Prints "listening on 127.0.0.1:PORT" to stderr once listening.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr size_t kHighWaterBytes = 1024 * 1024;
constexpr int kBacklog = 4096;

// Per-connection state, passed as the callbacks' argument.
struct Conn {
  bool peer_closed = false;
};

void free_conn(bufferevent* bev, Conn* conn) {
  bufferevent_free(bev);  // BEV_OPT_CLOSE_ON_FREE closes the socket
  delete conn;
}

void on_read(bufferevent* bev, void* arg) {
  (void)arg;
  evbuffer* out = bufferevent_get_output(bev);
  evbuffer_add_buffer(out, bufferevent_get_input(bev));
  if (evbuffer_get_length(out) > kHighWaterBytes) bufferevent_disable(bev, EV_READ);
}

// Called when the output has drained to the write low-water mark (0: empty).
void on_write(bufferevent* bev, void* arg) {
  auto* conn = static_cast<Conn*>(arg);
  if (conn->peer_closed) {
    free_conn(bev, conn);
    return;
  }
  if (!(bufferevent_get_enabled(bev) & EV_READ)) bufferevent_enable(bev, EV_READ);
}

void on_event(bufferevent* bev, short what, void* arg) {
  auto* conn = static_cast<Conn*>(arg);
  if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
    conn->peer_closed = true;
    bufferevent_disable(bev, EV_READ);
    // Anything still in the input (read together with the EOF) goes out first.
    evbuffer* out = bufferevent_get_output(bev);
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) == 0) free_conn(bev, conn);
    // Otherwise on_write frees it once the output is flushed.
    return;
  }
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) free_conn(bev, conn);
}

void on_accept(evconnlistener* listener, evutil_socket_t fd, sockaddr*, int, void*) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  event_base* base = evconnlistener_get_base(listener);
  bufferevent* bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  auto* conn = new Conn;
  bufferevent_setcb(bev, on_read, on_write, on_event, conn);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

void on_accept_error(evconnlistener*, void*) {
  int err = EVUTIL_SOCKET_ERROR();
  std::fprintf(stderr, "libevent_echo: accept: %s\n", evutil_socket_error_to_string(err));
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
    std::fprintf(stderr, "libevent_echo: bad port %d\n", port);
    std::exit(2);
  }
  return port;
}

}  // namespace

int main(int argc, char** argv) {
  int port = parse_port(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  event_base* base = event_base_new();
  if (base == nullptr) {
    std::fprintf(stderr, "libevent_echo: event_base_new failed\n");
    return 1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  evconnlistener* listener = evconnlistener_new_bind(
      base, on_accept, nullptr, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
      kBacklog, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (listener == nullptr) {
    std::fprintf(stderr, "libevent_echo: bind 127.0.0.1:%d: %s\n", port, std::strerror(errno));
    return 1;
  }
  evconnlistener_set_error_cb(listener, on_accept_error);

  socklen_t alen = sizeof addr;
  if (getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&addr), &alen) !=
      0) {
    std::fprintf(stderr, "libevent_echo: getsockname: %s\n", std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "listening on 127.0.0.1:%u\n", unsigned{ntohs(addr.sin_port)});

  event_base_dispatch(base);
  evconnlistener_free(listener);
  event_base_free(base);
}
