#include "cluster/redis_address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>

#include "keel/error.h"

namespace keel::cluster {
namespace {

[[noreturn]] void bad(std::string_view url, std::string_view why) {
  throw Error("--redis " + std::string(url) + ": " + std::string(why) +
              " (expected redis://HOST[:PORT][/DB] or unix:PATH[?db=DB])");
}

int number(std::string_view url, std::string_view text, int max, std::string_view what) {
  int value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > max)
    bad(url, "bad " + std::string(what) + " '" + std::string(text) + "'");
  return value;
}

// The first IPv4 or IPv6 address of host, as text.
std::string resolve(std::string_view url, const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0)
    bad(url, "cannot resolve " + host + ": " + ::gai_strerror(rc));
  char text[INET6_ADDRSTRLEN] = {};
  const addrinfo* a = found;
  const void* addr =
      a->ai_family == AF_INET
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
          : &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr;
  ::inet_ntop(a->ai_family, addr, text, sizeof text);
  ::freeaddrinfo(found);
  return text;
}

}  // namespace

RedisAddress RedisAddress::parse(std::string_view url) {
  RedisAddress a;
  if (url.starts_with("unix:")) {
    std::string_view rest = url.substr(5);
    if (size_t q = rest.find("?db="); q != std::string_view::npos) {
      a.db = number(url, rest.substr(q + 4), 15, "database");
      rest = rest.substr(0, q);
    }
    if (rest.empty()) bad(url, "no socket path");
    a.unix_path = std::string(rest);
    return a;
  }
  if (!url.starts_with("redis://")) bad(url, "unknown scheme");
  std::string_view rest = url.substr(8);
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash + 1 < rest.size()) a.db = number(url, rest.substr(slash + 1), 15, "database");
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest;
  if (rest.starts_with('[')) {  // [v6]:port
    size_t close = rest.find(']');
    if (close == std::string_view::npos) bad(url, "unclosed '['");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) bad(url, "expected ':' after ']'");
      a.port = number(url, after.substr(1), 65535, "port");
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    a.port = number(url, rest.substr(colon + 1), 65535, "port");
  }
  if (host.empty()) bad(url, "no host");
  if (a.port == 0) bad(url, "port 0");
  a.host = resolve(url, std::string(host));
  return a;
}

std::string RedisAddress::to_string() const {
  if (!unix_path.empty()) return "unix:" + unix_path + "?db=" + std::to_string(db);
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "redis://" + h + ":" + std::to_string(port) + "/" + std::to_string(db);
}

}  // namespace keel::cluster
