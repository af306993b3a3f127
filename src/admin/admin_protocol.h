// Pure pieces of the admin protocol (docs/protocols.md, "Admin protocol"): line framing with a
// size cap, the token comparison, client ids as operators type them, timestamps.
// Thread safety: value types and free functions; a LineFramer has one owner at a time.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "keel/net/endpoint.h"

namespace keel::admin {

// Splits a byte stream into lines ("\n" or "\r\n" terminated) of at most max_line_bytes bytes
// (terminator excluded). A line that is, or can only become, longer is reported as too_long.
class LineFramer {
 public:
  enum class Status { line, need_more, too_long };

  explicit LineFramer(size_t max_line_bytes) : max_(max_line_bytes) {}

  void feed(std::string_view bytes) { pending_.append(bytes); }

  // The next complete line, without its terminator.
  Status next(std::string& line) {
    size_t nl = pending_.find('\n', start_);
    size_t length = (nl == std::string::npos ? pending_.size() : nl) - start_;
    if (nl != std::string::npos && length > 0 && pending_[nl - 1] == '\r') --length;
    if (length > max_) return Status::too_long;
    if (nl == std::string::npos) {
      compact();
      return Status::need_more;
    }
    line.assign(pending_, start_, length);
    start_ = nl + 1;
    if (start_ == pending_.size()) clear();
    return Status::line;
  }

  // At end of input: the unterminated rest (false when there is none).
  bool take_rest(std::string& line) {
    if (start_ >= pending_.size()) return false;
    line.assign(pending_, start_, std::string::npos);
    clear();
    return true;
  }

  size_t buffered_bytes() const noexcept { return pending_.size() - start_; }

 private:
  void clear() {
    pending_.clear();
    pending_.shrink_to_fit();  // an idle admin connection holds no memory
    start_ = 0;
  }
  void compact() {
    if (start_ == 0) return;
    pending_.erase(0, start_);
    start_ = 0;
  }

  std::string pending_;
  size_t start_ = 0;
  size_t max_;
};

// Compares a client's token with the secret in time that depends only on the secret's length,
// so response timing does not reveal how much of a guess was right.
inline bool constant_time_equal(std::string_view given, std::string_view secret) noexcept {
  volatile unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < secret.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | static_cast<unsigned char>(g ^ static_cast<unsigned char>(secret[i]));
  }
  return diff == 0;
}

// A client id as an operator types it: decimal digits only (the ConnectionId value).
inline std::optional<uint64_t> parse_client_id(std::string_view text) noexcept {
  if (text.empty() || text.size() > 20) return std::nullopt;
  for (char ch : text)
    if (ch < '0' || ch > '9') return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// A client of another cluster node as an operator types it: NODE/ID ("n2/17"). The node is what
// precedes the last '/', the id is as parse_client_id takes it.
inline std::optional<std::pair<std::string, uint64_t>> parse_node_client_id(std::string_view text) {
  size_t slash = text.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  std::optional<uint64_t> id = parse_client_id(text.substr(slash + 1));
  if (!id) return std::nullopt;
  return std::make_pair(std::string(text.substr(0, slash)), *id);
}

// 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104.
inline bool is_loopback(const Endpoint& ep) noexcept {
  if (ep.family() == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(ep.sockaddr_ptr());
    return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
  }
  if (ep.family() == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(ep.sockaddr_ptr())->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127;
  }
  return false;
}

// "2026-11-22T23:09:01Z"
inline std::string utc_timestamp(std::chrono::system_clock::time_point when) {
  time_t t = std::chrono::system_clock::to_time_t(when);
  tm parts{};
  ::gmtime_r(&t, &parts);
  char buf[32];
  size_t n = ::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return std::string(buf, n);
}

}  // namespace keel::admin
