#include "cluster/redis_address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>

#include "keel/error.h"

namespace keel::cluster {
namespace {

// url with its password replaced by ***, for messages.
std::string redacted(std::string_view url) {
  std::string out(url);
  if (url.starts_with("redis://")) {
    size_t at = out.rfind('@');
    size_t colon = out.find(':', 8);
    if (at != std::string::npos && colon != std::string::npos && colon < at)
      out.replace(colon + 1, at - colon - 1, "***");
  }
  for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
    size_t end = out.find('&', p);
    out.replace(p + 9, (end == std::string::npos ? out.size() : end) - p - 9, "***");
  }
  return out;
}

[[noreturn]] void bad(std::string_view url, std::string_view why) {
  throw Error("--redis " + redacted(url) + ": " + std::string(why) +
              " (expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or "
              "unix:PATH[?db=DB][&user=USER][&password=PASSWORD])");
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
    if (size_t q = rest.find('?'); q != std::string_view::npos) {
      std::string_view query = rest.substr(q + 1);
      rest = rest.substr(0, q);
      while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (item.starts_with("db="))
          a.db = number(url, item.substr(3), 15, "database");
        else if (item.starts_with("user="))
          a.user = std::string(item.substr(5));
        else if (item.starts_with("password="))
          a.password = std::string(item.substr(9));
        else
          bad(url, "unknown parameter '" + std::string(item.substr(0, item.find('='))) + "'");
      }
    }
    if (rest.empty()) bad(url, "no socket path");
    a.unix_path = std::string(rest);
    return a;
  }
  if (!url.starts_with("redis://")) bad(url, "unknown scheme");
  std::string_view rest = url.substr(8);
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      bad(url, "write the password after a ':' (redis://:PASSWORD@HOST or USER:PASSWORD@HOST)");
    a.user = std::string(userinfo.substr(0, colon));
    a.password = std::string(userinfo.substr(colon + 1));
    if (a.password.empty()) bad(url, "empty password");
    rest = rest.substr(at + 1);
  }
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
  if (!unix_path.empty())
    return "unix:" + unix_path + "?db=" + std::to_string(db) +
           (user.empty() ? "" : "&user=" + user) + (password.empty() ? "" : "&password=***");
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::string auth = password.empty() ? "" : user + ":***@";
  return "redis://" + auth + h + ":" + std::to_string(port) + "/" + std::to_string(db);
}

}  // namespace keel::cluster
