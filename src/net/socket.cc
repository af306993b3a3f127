#include "keel/net/socket.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

#include "keel/error.h"

namespace keel {

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

Socket::~Socket() {
  reset();
}

void Socket::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Socket Socket::stream_for(const Endpoint& endpoint) {
  if (endpoint.is_udp())
    throw Error("socket " + endpoint.to_string() +
                ": a UDP endpoint carries datagrams, not a stream (serve it with keel::UdpServer)");
  int fd = ::socket(endpoint.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_system_error("socket", endpoint.to_string(), errno);
  return Socket(fd);
}

Socket Socket::datagram_for(const Endpoint& endpoint) {
  if (!endpoint.is_udp() || endpoint.is_unix())
    throw Error("socket " + endpoint.to_string() + ": not a UDP endpoint (write udp:HOST:PORT)");
  int fd = ::socket(endpoint.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_system_error("socket", endpoint.to_string(), errno);
  return Socket(fd);
}

namespace {

// A Unix socket file nobody accepts on is left over from a dead process: safe to remove.
void remove_stale_unix_socket(const Endpoint& endpoint) {
  std::string path = endpoint.unix_path();
  struct stat st {};
  if (path.empty() || ::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return;
  bool alive = ::connect(probe, endpoint.sockaddr_ptr(), endpoint.sockaddr_len()) == 0;
  ::close(probe);
  if (!alive) ::unlink(path.c_str());
}

}  // namespace

Socket Socket::listen_on(const Endpoint& endpoint, const SocketOptions& options) {
  if (endpoint.is_udp())
    throw Error("listen " + endpoint.to_string() +
                ": a UDP endpoint carries datagrams, not a stream (serve it with keel::UdpServer)");
  Socket s = stream_for(endpoint);
  if (endpoint.is_unix()) {
    remove_stale_unix_socket(endpoint);
  } else {
    s.set_reuse_addr(options.reuse_addr);
    if (options.reuse_port) s.set_reuse_port(true);
    if (endpoint.is_ipv6()) {
      int on = 1;  // [::]:port means IPv6 only; listen on 0.0.0.0 too for IPv4.
      ::setsockopt(s.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    }
  }
  if (options.recv_buffer_bytes) s.set_recv_buffer(*options.recv_buffer_bytes);
  if (::bind(s.fd(), endpoint.sockaddr_ptr(), endpoint.sockaddr_len()) != 0)
    throw_system_error("bind", endpoint.to_string(), errno);
  if (::listen(s.fd(), options.backlog) != 0)
    throw_system_error("listen", endpoint.to_string(), errno);
  return s;
}

void Socket::set_int_option(int level, int name, int value, const char* what) {
  if (::setsockopt(fd_, level, name, &value, sizeof value) != 0)
    throw_system_error("setsockopt", what, errno);
}

void Socket::set_reuse_addr(bool on) {
  set_int_option(SOL_SOCKET, SO_REUSEADDR, on, "SO_REUSEADDR");
}
void Socket::set_reuse_port(bool on) {
  set_int_option(SOL_SOCKET, SO_REUSEPORT, on, "SO_REUSEPORT");
}
void Socket::set_no_delay(bool on) {
  set_int_option(IPPROTO_TCP, TCP_NODELAY, on, "TCP_NODELAY");
}
void Socket::set_send_buffer(int bytes) {
  set_int_option(SOL_SOCKET, SO_SNDBUF, bytes, "SO_SNDBUF");
}
void Socket::set_recv_buffer(int bytes) {
  set_int_option(SOL_SOCKET, SO_RCVBUF, bytes, "SO_RCVBUF");
}

void Socket::set_keep_alive(bool on, int idle_s, int interval_s, int count) {
  set_int_option(SOL_SOCKET, SO_KEEPALIVE, on, "SO_KEEPALIVE");
  if (!on) return;
  set_int_option(IPPROTO_TCP, TCP_KEEPIDLE, idle_s, "TCP_KEEPIDLE");
  set_int_option(IPPROTO_TCP, TCP_KEEPINTVL, interval_s, "TCP_KEEPINTVL");
  set_int_option(IPPROTO_TCP, TCP_KEEPCNT, count, "TCP_KEEPCNT");
}

int descriptor_ceiling(size_t headroom) noexcept {
  rlimit lim{};
  if (headroom == 0 || ::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY ||
      lim.rlim_cur > static_cast<rlim_t>(std::numeric_limits<int>::max()))
    return std::numeric_limits<int>::max();
  return static_cast<int>(lim.rlim_cur) -
         static_cast<int>(std::min<rlim_t>(headroom, lim.rlim_cur));
}

void Socket::apply_connection_options(const SocketOptions& options) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  bool tcp = ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
             (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
  if (tcp) {
    if (options.no_delay) set_no_delay(true);
    if (options.keep_alive)
      set_keep_alive(true, options.keep_alive_idle_s, options.keep_alive_interval_s,
                     options.keep_alive_count);
    if (options.user_timeout_ms > 0)
      set_int_option(IPPROTO_TCP, TCP_USER_TIMEOUT, options.user_timeout_ms, "TCP_USER_TIMEOUT");
  }
  if (options.send_buffer_bytes) set_send_buffer(*options.send_buffer_bytes);
  if (options.recv_buffer_bytes) set_recv_buffer(*options.recv_buffer_bytes);
}

Endpoint Socket::local_endpoint() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

Endpoint Socket::peer_endpoint() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

int Socket::take_error() const noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

}  // namespace keel
