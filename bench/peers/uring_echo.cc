// uring_echo: the smallest single-threaded io_uring echo server we could write, the completion
// counterpart of epoll_echo: what an io_uring backend could reach at best on this kernel, and
// so the yardstick for keel's own (bench/compare, docs/architecture.md).
//
// One ring (single issuer, deferred task work). Multishot accept on the listener; per
// connection one multishot recv that picks its buffers from a ring of provided buffers shared
// by all connections (an idle connection holds none). Received bytes are sent straight from
// the provided buffer, one send in flight per connection (later receipts wait in order); the
// buffer goes back to the ring when its bytes are all sent. Running out of buffers ends a
// connection's multishot recv (ENOBUFS); it is re-armed once buffers come back, so memory is
// bounded by the buffer ring. Half-close: at EOF, what is queued is sent, then the socket is
// closed. Submission is batched: one io_uring_submit_and_wait per turn.
// Same socket settings as keel: TCP_NODELAY on accepted sockets, listen backlog 4096.
//
// Usage: uring_echo [--port N]   (N = 0, the default, lets the kernel choose)
// Prints "listening on 127.0.0.1:PORT" to stderr once listening.
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr unsigned kBufferBytes = 16 * 1024;
constexpr unsigned kBuffers = 4096;  // a power of two; 64 MiB of address space, touched on use
constexpr unsigned kGroup = 0;
constexpr int kBacklog = 4096;

enum Op : uint64_t { kAccept = 1, kRecv = 2, kSend = 3 };
uint64_t tag(Op op, int fd) {
  return (uint64_t(uint32_t(fd)) << 8) | op;
}

struct Piece {
  uint16_t bid;
  uint32_t off;
  uint32_t len;
};

struct Conn {
  bool open = false;
  bool closing = false;  // shut down; closed once no request on it is in flight
  bool recv_armed = false;
  bool sending = false;
  bool peer_closed = false;
  // Received bytes not yet sent, in order; out.front() is in flight. Rarely more than one, so a
  // vector (empty: no memory, unlike a deque) erased at the front.
  std::vector<Piece> out;
};

io_uring g_ring;
io_uring_buf_ring* g_bufs = nullptr;
char* g_memory = nullptr;
unsigned g_free_buffers = kBuffers;
std::vector<Conn> g_conns;   // indexed by fd
std::vector<int> g_starved;  // connections whose recv ended for want of buffers

[[noreturn]] void die(const char* what, int err) {
  std::fprintf(stderr, "uring_echo: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

io_uring_sqe* sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&g_ring);
  if (!s) {  // the submission queue is full: hand it to the kernel and take a fresh entry
    io_uring_submit(&g_ring);
    s = io_uring_get_sqe(&g_ring);
    if (!s) die("io_uring_get_sqe", EBUSY);
  }
  return s;
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
    std::fprintf(stderr, "uring_echo: bad port %d\n", port);
    std::exit(2);
  }
  return port;
}

void give_back(uint16_t bid) {
  io_uring_buf_ring_add(g_bufs, g_memory + size_t{bid} * kBufferBytes, kBufferBytes, bid,
                        io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(g_bufs, 1);
  ++g_free_buffers;
}

void arm_recv(int fd) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kGroup;
  io_uring_sqe_set_data64(s, tag(kRecv, fd));
  g_conns[size_t(fd)].recv_armed = true;
}

void send_front(int fd, Conn& c) {
  const Piece& p = c.out.front();
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, fd, g_memory + size_t{p.bid} * kBufferBytes + p.off, p.len, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(kSend, fd));
  c.sending = true;
}

// The descriptor is closed only when no request on it is in flight, so a completion never
// meets a reused fd number, and a buffer is given back only when no send reads from it.
void release_if_quiet(int fd, Conn& c) {
  if (!c.closing || c.sending || c.recv_armed) return;
  c.open = false;
  close(fd);
}

void close_conn(int fd, Conn& c) {
  if (c.closing) return;
  c.closing = true;
  shutdown(fd, SHUT_RDWR);  // ends an armed recv and a stalled send
  while (c.out.size() > (c.sending ? 1u : 0u)) {
    give_back(c.out.back().bid);
    c.out.pop_back();
  }
  release_if_quiet(fd, c);
}

void maybe_finish(int fd, Conn& c) {
  if (c.peer_closed && c.out.empty() && !c.sending) close_conn(fd, c);
}

void on_accept(const io_uring_cqe* cqe, int listen_fd) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) {  // the multishot accept ended: arm it again
    io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, tag(kAccept, listen_fd));
  }
  if (cqe->res < 0) return;  // EMFILE etc.: the next connection will be tried
  int fd = cqe->res;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (size_t(fd) >= g_conns.size()) g_conns.resize(size_t(fd) + 1);
  g_conns[size_t(fd)] = Conn{};
  g_conns[size_t(fd)].open = true;
  arm_recv(fd);
}

void on_recv(const io_uring_cqe* cqe, int fd) {
  Conn& c = g_conns[size_t(fd)];
  if (!(cqe->flags & IORING_CQE_F_MORE)) c.recv_armed = false;
  if (cqe->flags & IORING_CQE_F_BUFFER) --g_free_buffers;
  uint16_t bid = uint16_t(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
  if (c.closing) {
    if (cqe->flags & IORING_CQE_F_BUFFER) give_back(bid);
    release_if_quiet(fd, c);
    return;
  }
  if (cqe->res > 0) {
    c.out.push_back({bid, 0, uint32_t(cqe->res)});
    if (!c.sending) send_front(fd, c);
    if (!c.recv_armed) arm_recv(fd);
    return;
  }
  if (cqe->res == -ENOBUFS) {  // the ring ran dry: re-arm when buffers come back
    g_starved.push_back(fd);
    return;
  }
  if (cqe->res == 0) {
    c.peer_closed = true;
    maybe_finish(fd, c);
    return;
  }
  close_conn(fd, c);  // a reset or other error
}

void on_send(const io_uring_cqe* cqe, int fd) {
  Conn& c = g_conns[size_t(fd)];
  c.sending = false;
  if (c.closing) {
    if (!c.out.empty()) give_back(c.out.front().bid);
    c.out.clear();
    release_if_quiet(fd, c);
    return;
  }
  if (cqe->res < 0) {
    close_conn(fd, c);
    return;
  }
  Piece& p = c.out.front();
  p.off += uint32_t(cqe->res);
  p.len -= uint32_t(cqe->res);
  if (p.len == 0) {
    give_back(p.bid);
    c.out.erase(c.out.begin());
    if (c.out.empty()) std::vector<Piece>().swap(c.out);
  }
  if (!c.out.empty()) {
    send_front(fd, c);
    return;
  }
  maybe_finish(fd, c);
}

}  // namespace

int main(int argc, char** argv) {
  int port = parse_port(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket", errno);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(uint16_t(port));
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind", errno);
  if (listen(lfd, kBacklog) != 0) die("listen", errno);
  socklen_t alen = sizeof addr;
  if (getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) die("getsockname", errno);

  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  params.flags |= IORING_SETUP_CQSIZE;
  params.cq_entries = 16384;
  if (int err = io_uring_queue_init_params(4096, &g_ring, &params); err < 0)
    die("io_uring_queue_init_params", -err);

  const size_t ring_bytes = kBuffers * sizeof(io_uring_buf);
  void* ring_mem =
      mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  g_memory = static_cast<char*>(mmap(nullptr, size_t{kBuffers} * kBufferBytes,
                                     PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0));
  if (ring_mem == MAP_FAILED || g_memory == MAP_FAILED) die("mmap", errno);
  g_bufs = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(ring_mem);
  reg.ring_entries = kBuffers;
  reg.bgid = kGroup;
  if (int err = io_uring_register_buf_ring(&g_ring, &reg, 0); err < 0)
    die("io_uring_register_buf_ring", -err);
  io_uring_buf_ring_init(g_bufs);
  for (unsigned i = 0; i < kBuffers; ++i)
    io_uring_buf_ring_add(g_bufs, g_memory + size_t{i} * kBufferBytes, kBufferBytes, uint16_t(i),
                          io_uring_buf_ring_mask(kBuffers), int(i));
  io_uring_buf_ring_advance(g_bufs, int(kBuffers));

  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, lfd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, tag(kAccept, lfd));
  std::fprintf(stderr, "listening on 127.0.0.1:%u\n", unsigned{ntohs(addr.sin_port)});

  for (;;) {
    int err = io_uring_submit_and_wait(&g_ring, 1);
    if (err < 0 && err != -EINTR) die("io_uring_submit_and_wait", -err);
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&g_ring, head, cqe) {
      ++seen;
      uint64_t data = io_uring_cqe_get_data64(cqe);
      int fd = int(data >> 8);
      switch (Op(data & 0xff)) {
        case kAccept: on_accept(cqe, lfd); break;
        case kRecv: on_recv(cqe, fd); break;
        case kSend: on_send(cqe, fd); break;
      }
    }
    io_uring_cq_advance(&g_ring, seen);
    // Buffers came back: connections that ran dry read again (a quarter free, to re-arm in bulk).
    if (!g_starved.empty() && g_free_buffers >= kBuffers / 4) {
      for (int fd : g_starved)
        if (g_conns[size_t(fd)].open && !g_conns[size_t(fd)].closing &&
            !g_conns[size_t(fd)].recv_armed)
          arm_recv(fd);
      g_starved.clear();
    }
  }
}
