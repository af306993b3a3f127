// Endpoint: where a socket listens or connects. TCP over IPv4/IPv6, or a Unix stream socket.
// Thread safety: a value type; const methods are safe from any thread.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>

namespace keel {

class Endpoint {
 public:
  // Accepted forms:
  //   127.0.0.1:7000   [::1]:7000   localhost:7000   :7000 (all IPv4 interfaces)
  //   unix:/path/to/socket
  // Host names are resolved once, here, to their first address.
  // Throws Error on anything else, naming the text and what is wrong with it.
  static Endpoint parse(std::string_view text);

  // From a raw address as returned by accept/getsockname/getpeername.
  static Endpoint from_sockaddr(const sockaddr* addr, socklen_t len);

  Endpoint() = default;

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

  // "127.0.0.1:7000", "[::1]:7000" or "unix:/path"; parse(to_string()) gives back the same
  // endpoint.
  std::string to_string() const;

  bool operator==(const Endpoint& other) const noexcept;

 private:
  sockaddr_storage addr_{};
  socklen_t len_ = 0;
};

}  // namespace keel
