#include "keel/net/proxy_stage.h"

#include <errno.h>
#include <sys/socket.h>

#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "keel/error.h"
#include "keel/net/proxy_protocol.h"

namespace keel {
namespace {

// The first bytes received, quoted and printable, so a log shows what arrived instead of a
// header ("GET / HTTP/1.1\r\n", "\x16\x03\x01" for TLS sent straight to the port).
std::string received_sample(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  constexpr size_t kShown = 16;
  std::string out = "\"";
  for (unsigned char c : bytes.substr(0, kShown)) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else if (c == '\r' || c == '\n') {
      out += c == '\r' ? "\\r" : "\\n";
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + (bytes.size() > kShown ? "\"..." : "\"");
}

class ProxyHeaderStage final : public Stream {
 public:
  ProxyHeaderStage(std::shared_ptr<const ProxyPolicy> policy, std::unique_ptr<Stream> next)
      : policy_(std::move(policy)), next_(std::move(next)) {}

  Step open(int fd, const Endpoint& peer) override {
    if (done_) return Step::done;
    if (!peer_checked_) {
      if (policy_ && !policy_->allows(peer)) return fail(not_allowed(peer));
      peer_checked_ = true;
    }
    char buf[kProxyMaxHeaderBytes];
    for (;;) {
      const size_t have = received_.size();
      if (have >= sizeof buf) return fail("PROXY header: longer than the parser allows");
      std::memcpy(buf, received_.data(), have);
      // Look without taking: bytes past the header belong to whoever reads after this stage.
      ssize_t n = ::recv(fd, buf + have, sizeof buf - have, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::want_read;
        return fail("PROXY header: recv: " + errno_text(errno));
      }
      if (n == 0)
        return fail(have ? "PROXY header: peer closed after " + std::to_string(have) +
                               " bytes of it (received " + received_sample(received_) + ")"
                         : "PROXY header: peer closed before sending one");
      const std::string_view bytes(buf, have + static_cast<size_t>(n));
      ProxyParse parsed = parse_proxy_header(bytes);
      if (parsed.status == ProxyParse::Status::error)
        return fail("PROXY header: " + parsed.error + " (received " + received_sample(bytes) + ")");
      // Done: take exactly the rest of the header. Not yet: all that was peeked is header, so
      // take it (the socket stops being readable for it) and keep it for the next look.
      const bool done = parsed.status == ProxyParse::Status::done;
      const size_t take = done ? parsed.header.length - have : static_cast<size_t>(n);
      ssize_t got = ::recv(fd, buf + have, take, MSG_DONTWAIT);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::want_read;
        return fail("PROXY header: recv: " + errno_text(errno));
      }
      if (done && static_cast<size_t>(got) == take) {
        header_ = std::move(parsed.header);
        received_.clear();
        received_.shrink_to_fit();
        done_ = true;
        return Step::done;
      }
      received_.append(buf + have, static_cast<size_t>(got));
    }
  }

  std::optional<Endpoint> claimed_peer() const override {
    if (!done_ || header_.command != ProxyHeader::Command::proxy) return std::nullopt;
    return header_.source;
  }
  bool carries_data() const override { return false; }
  std::unique_ptr<Stream> take_next() override { return std::move(next_); }

  // Not a data stream: the connection reads and writes through next (or the socket).
  ssize_t read(int, char*, size_t) override {
    errno = ENOTSUP;
    return -1;
  }
  ssize_t write(int, const char*, size_t) override {
    errno = ENOTSUP;
    return -1;
  }
  void shutdown_write(int fd) override { ::shutdown(fd, SHUT_WR); }

  std::string error_detail() const override { return error_; }

 private:
  Step fail(std::string reason) {
    error_ = std::move(reason);
    return Step::failed;
  }

  std::string not_allowed(const Endpoint& peer) const {
    std::string list;
    for (const Cidr& c : policy_->allow) {
      if (list.size() > 200) {
        list += ", ...";
        break;
      }
      list += (list.empty() ? "" : ", ") + c.to_string();
    }
    return "PROXY header: peer " + peer.to_string() + " may not send one (allowed: " + list + ")";
  }

  std::shared_ptr<const ProxyPolicy> policy_;
  std::unique_ptr<Stream> next_;
  std::string received_;  // header bytes already taken off the socket
  ProxyHeader header_;
  std::string error_;
  bool peer_checked_ = false;
  bool done_ = false;
};

}  // namespace

bool ProxyPolicy::allows(const Endpoint& peer) const noexcept {
  if (allow.empty() || peer.is_unix()) return true;
  for (const Cidr& c : allow)
    if (c.contains(peer)) return true;
  return false;
}

std::unique_ptr<Stream> make_proxy_stage(std::shared_ptr<const ProxyPolicy> policy,
                                         std::unique_ptr<Stream> next) {
  return std::make_unique<ProxyHeaderStage>(std::move(policy), std::move(next));
}

StreamFactory proxy_stream_factory(ProxyPolicy policy, StreamFactory inner) {
  auto shared = std::make_shared<const ProxyPolicy>(std::move(policy));
  return [shared, inner = std::move(inner)]() -> std::unique_ptr<Stream> {
    return make_proxy_stage(shared, inner ? inner() : nullptr);
  };
}

}  // namespace keel
