// Socket: an owned file descriptor (closed by the destructor) with the option setters a
// server needs. Every socket keel makes is non-blocking and close-on-exec.
// Thread safety: not thread-safe; one owner at a time (move-only).
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

#include "keel/net/endpoint.h"

namespace keel {

// Options applied to listening, accepted or connecting sockets. Unset optionals keep the
// kernel default.
struct SocketOptions {
  bool reuse_addr = true;
  bool reuse_port = false;
  bool no_delay = true;  // TCP_NODELAY: request/response traffic should not wait for Nagle.
  bool keep_alive = false;
  int keep_alive_idle_s = 60;
  int keep_alive_interval_s = 10;
  int keep_alive_count = 5;
  // TCP_USER_TIMEOUT: unacknowledged data (or, with keep_alive, unanswered probes) for this
  // long closes the connection with ETIMEDOUT. 0: the kernel's default (about 15 minutes).
  int user_timeout_ms = 0;
  std::optional<int> send_buffer_bytes;
  std::optional<int> recv_buffer_bytes;
  int backlog = 4096;  // capped by net.core.somaxconn
};

// The lowest descriptor number a server keeping headroom descriptors free must not hold: the
// soft open-file limit minus headroom (no limit when headroom is 0).
int descriptor_ceiling(size_t headroom) noexcept;

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) noexcept : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket();

  // A non-blocking, close-on-exec stream socket for endpoint's family. Throws Error, also for a
  // udp: endpoint (datagrams are UdpSocket's, keel/net/udp_socket.h).
  static Socket stream_for(const Endpoint& endpoint);
  // A non-blocking, close-on-exec UDP socket for a udp: endpoint's family. Throws Error.
  static Socket datagram_for(const Endpoint& endpoint);
  // socket + options + bind + listen, with errors that name the endpoint. For Unix endpoints a
  // stale socket file (nobody accepting on it) is removed first. Throws Error.
  static Socket listen_on(const Endpoint& endpoint, const SocketOptions& options);

  int fd() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

  // Each setter throws Error naming the option on failure. TCP-only options are ignored on
  // Unix sockets.
  void set_reuse_addr(bool on);
  void set_reuse_port(bool on);
  void set_no_delay(bool on);
  void set_keep_alive(bool on, int idle_s, int interval_s, int count);
  void set_send_buffer(int bytes);
  void set_recv_buffer(int bytes);
  // Applies the options that matter for a connected (accepted or connecting) socket.
  void apply_connection_options(const SocketOptions& options);

  Endpoint local_endpoint() const;
  Endpoint peer_endpoint() const;
  // Pending SO_ERROR (0 when none); reading it clears it.
  int take_error() const noexcept;

 private:
  void set_int_option(int level, int name, int value, const char* what);
  int fd_ = -1;
};

}  // namespace keel
