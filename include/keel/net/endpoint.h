// Endpoint: where a socket listens or connects. TCP over IPv4/IPv6, a Unix stream socket, or UDP
// over IPv4/IPv6 (a datagram endpoint, written udp:HOST:PORT).
// Thread safety: a value type; const methods are safe from any thread.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace keel {

class Endpoint {
 public:
  // What kind of socket the endpoint names: a byte stream (TCP, Unix) or datagrams (UDP).
  enum class Transport : uint8_t { stream, datagram };

  // Accepted forms:
  //   127.0.0.1:7000   [::1]:7000   localhost:7000   :7000 (all IPv4 interfaces)
  //   unix:/path/to/socket
  //   udp:127.0.0.1:9000   udp:[::1]:9000   udp:localhost:9000   udp::9000 (UDP; IP only)
  // Host names are resolved once, here, to their first address.
  // Throws Error on anything else, naming the text and what is wrong with it.
  static Endpoint parse(std::string_view text);

  // From a raw address as returned by accept/getsockname/getpeername/recvmsg.
  static Endpoint from_sockaddr(const sockaddr* addr, socklen_t len,
                                Transport transport = Transport::stream);

  Endpoint() = default;

  Transport transport() const noexcept { return transport_; }
  // A UDP endpoint: served by UdpServer (keel/net/udp_server.h), refused by the stream classes.
  bool is_udp() const noexcept { return transport_ == Transport::datagram; }
  bool is_unix() const noexcept { return addr_.ss_family == AF_UNIX; }
  bool is_ipv6() const noexcept { return addr_.ss_family == AF_INET6; }
  int family() const noexcept { return addr_.ss_family; }
  // Port for TCP endpoints, 0 for Unix ones.
  int port() const noexcept;
  // The path of a Unix endpoint, empty for TCP ones.
  std::string unix_path() const;

  const sockaddr* sockaddr_ptr() const noexcept {
    return reinterpret_cast<const sockaddr*>(&addr_);
  }
  socklen_t sockaddr_len() const noexcept { return len_; }

  // "127.0.0.1:7000", "[::1]:7000", "unix:/path" or "udp:127.0.0.1:9000"; parse(to_string())
  // gives back the same endpoint.
  std::string to_string() const;

  // Same address and same transport (udp:127.0.0.1:7000 is not 127.0.0.1:7000).
  bool operator==(const Endpoint& other) const noexcept;

 private:
  static Endpoint parse_ip(std::string_view text, std::string_view address, Transport transport);

  sockaddr_storage addr_{};
  socklen_t len_ = 0;
  Transport transport_ = Transport::stream;
};

}  // namespace keel
