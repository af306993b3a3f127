#include "keel/net/endpoint.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstring>

#include "keel/error.h"

namespace keel {
namespace {

constexpr std::string_view kExpectedAny = "HOST:PORT, [IPv6]:PORT, :PORT or unix:/path";
constexpr std::string_view kExpectedUdp = "udp:HOST:PORT, udp:[IPv6]:PORT or udp::PORT";

// The text as an error message shows it: a NUL byte would end the message there.
std::string shown(std::string_view text) {
  std::string out;
  for (char c : text) out += c == '\0' ? std::string_view("\\0") : std::string_view(&c, 1);
  return out;
}

[[noreturn]] void bad(std::string_view text, std::string_view why,
                      std::string_view expected = kExpectedAny) {
  throw Error("endpoint '" + shown(text) + "': " + std::string(why) + " (expected " +
              std::string(expected) + ")");
}

int parse_port(std::string_view text, std::string_view port, std::string_view expected) {
  if (port.empty()) bad(text, "missing port", expected);
  int value = -1;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  // Digits only: from_chars reads "-0" as 0.
  if (port.find_first_not_of("0123456789") != std::string_view::npos || ec != std::errc() ||
      end != port.data() + port.size() || value > 65535)
    bad(text, "port must be a number from 0 to 65535", expected);
  return value;
}

}  // namespace

Endpoint Endpoint::parse(std::string_view text) {
  if (text.starts_with("udp:")) {
    std::string_view address = text.substr(4);
    if (address.starts_with("unix:"))
      bad(text, "UDP needs an IP address (Unix datagram sockets are not supported)", kExpectedUdp);
    return parse_ip(text, address, Transport::datagram);
  }
  Endpoint ep;
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    sockaddr_un un{};
    if (path.empty()) bad(text, "empty Unix socket path");
    if (path.size() >= sizeof un.sun_path) bad(text, "Unix socket path longer than 107 bytes");
    if (path.find('\0') != std::string_view::npos) bad(text, "NUL byte in Unix socket path");
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    std::memcpy(&ep.addr_, &un, sizeof un);
    ep.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return ep;
  }
  return parse_ip(text, text, Transport::stream);
}

// text: the whole input (named in errors); address: its HOST:PORT part.
Endpoint Endpoint::parse_ip(std::string_view text, std::string_view address, Transport transport) {
  const std::string_view expected = transport == Transport::datagram ? kExpectedUdp : kExpectedAny;
  Endpoint ep;
  ep.transport_ = transport;
  std::string host;
  std::string_view port_text;
  if (address.starts_with("[")) {
    size_t close = address.find(']');
    if (close == std::string_view::npos) bad(text, "missing ']' after IPv6 address", expected);
    host = std::string(address.substr(1, close - 1));
    if (close + 1 >= address.size() || address[close + 1] != ':')
      bad(text, "missing ':PORT' after ']'", expected);
    port_text = address.substr(close + 2);
    in6_addr a6{};
    if (::inet_pton(AF_INET6, host.c_str(), &a6) != 1) bad(text, "not an IPv6 address", expected);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) bad(text, "missing ':PORT'", expected);
    host = std::string(address.substr(0, colon));
    if (host.find(':') != std::string::npos) bad(text, "IPv6 addresses need brackets", expected);
    port_text = address.substr(colon + 1);
  }
  int port = parse_port(text, port_text, expected);
  // inet_pton and getaddrinfo read a C string: a NUL would hide what follows it.
  if (host.find('\0') != std::string::npos) bad(text, "NUL byte in the host", expected);

  if (host.empty()) host = "0.0.0.0";
  in_addr a4{};
  in6_addr a6{};
  if (::inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(port));
    sin.sin_addr = a4;
    std::memcpy(&ep.addr_, &sin, sizeof sin);
    ep.len_ = sizeof sin;
    return ep;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(static_cast<uint16_t>(port));
    sin6.sin6_addr = a6;
    std::memcpy(&ep.addr_, &sin6, sizeof sin6);
    ep.len_ = sizeof sin6;
    return ep;
  }
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) bad(text, "host is neither an address nor a host name", expected);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = transport == Transport::datagram ? SOCK_DGRAM : SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* result = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    // AI_ADDRCONFIG hides loopback-only hosts on machines without a configured address.
    hints.ai_flags = 0;
    rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &result);
  }
  if (rc != 0 || result == nullptr)
    throw Error("resolve " + host + ": " + (rc ? ::gai_strerror(rc) : "no address"));
  // Prefer IPv4 so "localhost" means 127.0.0.1, as users expect.
  addrinfo* pick = result;
  for (addrinfo* ai = result; ai; ai = ai->ai_next)
    if (ai->ai_family == AF_INET) {
      pick = ai;
      break;
    }
  std::memcpy(&ep.addr_, pick->ai_addr, pick->ai_addrlen);
  ep.len_ = pick->ai_addrlen;
  ::freeaddrinfo(result);
  if (ep.addr_.ss_family == AF_INET)
    reinterpret_cast<sockaddr_in*>(&ep.addr_)->sin_port = htons(static_cast<uint16_t>(port));
  else
    reinterpret_cast<sockaddr_in6*>(&ep.addr_)->sin6_port = htons(static_cast<uint16_t>(port));
  return ep;
}

Endpoint Endpoint::from_sockaddr(const sockaddr* addr, socklen_t len, Transport transport) {
  Endpoint ep;
  ep.transport_ = transport;
  if (len > sizeof ep.addr_) len = sizeof ep.addr_;
  std::memcpy(&ep.addr_, addr, len);
  ep.len_ = len;
  return ep;
}

int Endpoint::port() const noexcept {
  if (addr_.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&addr_)->sin_port);
  if (addr_.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr_)->sin6_port);
  return 0;
}

std::string Endpoint::unix_path() const {
  if (addr_.ss_family != AF_UNIX) return {};
  const auto* un = reinterpret_cast<const sockaddr_un*>(&addr_);
  size_t max = len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
  return std::string(un->sun_path, strnlen(un->sun_path, max));
}

std::string Endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  const char* prefix = is_udp() ? "udp:" : "";
  switch (addr_.ss_family) {
    case AF_INET:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr_)->sin_addr, buf,
                  sizeof buf);
      return prefix + std::string(buf) + ":" + std::to_string(port());
    case AF_INET6:
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr_)->sin6_addr, buf,
                  sizeof buf);
      return prefix + std::string("[") + buf + "]:" + std::to_string(port());
    case AF_UNIX: {
      std::string path = unix_path();
      return "unix:" + (path.empty() ? std::string("(unnamed)") : path);
    }
    default: return "(none)";
  }
}

bool Endpoint::operator==(const Endpoint& other) const noexcept {
  return transport_ == other.transport_ && len_ == other.len_ &&
         std::memcmp(&addr_, &other.addr_, len_) == 0;
}

}  // namespace keel
