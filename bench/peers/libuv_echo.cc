// libuv_echo: a single-threaded echo server on libuv (Debian libuv1-dev), for the peer
// comparison (bench/compare).
//
// One uv_loop_t (the default loop). Reads land in one 64 KiB buffer shared by every connection
// (alloc_cb hands it out; the loop is single-threaded and read_cb consumes it at once). read_cb
// writes the bytes straight back with uv_try_write; only a remainder the kernel did not take is
// copied into a uv_write request, and the connection stops reading until that write completes
// (write-then-read for the slow path: at most 64 KiB queued per connection).
// Half-close: on EOF, uv_shutdown (which waits for queued writes), then uv_close.
// Same socket settings as keel: TCP_NODELAY on accepted sockets, listen backlog 4096.
//
// Usage: libuv_echo [--port N]   (N = 0, the default, lets the kernel choose)
// Prints "listening on 127.0.0.1:PORT" to stderr once listening.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

constexpr size_t kReadBytes = 64 * 1024;
constexpr int kBacklog = 4096;

char g_read_buffer[kReadBytes];

struct Conn {
  uv_tcp_t tcp;  // first member: a uv_handle_t* to it is a Conn*
  uv_shutdown_t shutdown;
};

struct WriteReq {
  uv_write_t req;
  std::unique_ptr<char[]> bytes;
};

Conn* conn_of(uv_handle_t* h) { return reinterpret_cast<Conn*>(h); }

void on_closed(uv_handle_t* h) { delete conn_of(h); }

void close_conn(uv_stream_t* s) {
  auto* h = reinterpret_cast<uv_handle_t*>(s);
  if (!uv_is_closing(h)) uv_close(h, on_closed);
}

void on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(g_read_buffer, kReadBytes);
}

void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);

void on_write(uv_write_t* req, int status) {
  std::unique_ptr<WriteReq> w(reinterpret_cast<WriteReq*>(req));
  uv_stream_t* s = req->handle;
  if (status < 0) {
    close_conn(s);
    return;
  }
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(s))) uv_read_start(s, on_alloc, on_read);
}

void on_shutdown(uv_shutdown_t* req, int) { close_conn(req->handle); }

void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  if (nread == 0) return;  // EAGAIN
  if (nread == UV_EOF) {
    // Half-close: flush what is queued (uv_shutdown waits for it), send FIN, then close.
    Conn* c = conn_of(reinterpret_cast<uv_handle_t*>(s));
    if (uv_shutdown(&c->shutdown, s, on_shutdown) != 0) close_conn(s);
    return;
  }
  if (nread < 0) {
    close_conn(s);
    return;
  }
  size_t len = static_cast<size_t>(nread);
  uv_buf_t out = uv_buf_init(buf->base, static_cast<unsigned>(len));
  int sent = uv_try_write(s, &out, 1);
  if (sent == UV_EAGAIN) sent = 0;
  if (sent < 0) {
    close_conn(s);
    return;
  }
  if (static_cast<size_t>(sent) == len) return;
  // Queue the remainder (copied: the read buffer is shared) and stop reading until it is sent.
  auto* w = new WriteReq;
  size_t rest = len - static_cast<size_t>(sent);
  w->bytes.reset(new char[rest]);
  std::memcpy(w->bytes.get(), buf->base + sent, rest);
  uv_buf_t rest_buf = uv_buf_init(w->bytes.get(), static_cast<unsigned>(rest));
  uv_read_stop(s);
  if (uv_write(&w->req, s, &rest_buf, 1, on_write) != 0) {
    delete w;
    close_conn(s);
  }
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) {
    std::fprintf(stderr, "libuv_echo: accept: %s\n", uv_strerror(status));
    return;
  }
  auto* c = new Conn;
  uv_tcp_init(server->loop, &c->tcp);
  auto* s = reinterpret_cast<uv_stream_t*>(&c->tcp);
  if (uv_accept(server, s) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start(s, on_alloc, on_read) != 0) close_conn(s);
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
    std::fprintf(stderr, "libuv_echo: bad port %d\n", port);
    std::exit(2);
  }
  return port;
}

}  // namespace

int main(int argc, char** argv) {
  int port = parse_port(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", port, &addr);
  int rc = uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server), kBacklog, on_connection);
  if (rc != 0) {
    std::fprintf(stderr, "libuv_echo: bind/listen 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
    return 1;
  }
  int alen = sizeof addr;
  uv_tcp_getsockname(&server, reinterpret_cast<sockaddr*>(&addr), &alen);
  std::fprintf(stderr, "listening on 127.0.0.1:%u\n", unsigned{ntohs(addr.sin_port)});
  return uv_run(loop, UV_RUN_DEFAULT);
}
