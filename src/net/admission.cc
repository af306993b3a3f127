#include "keel/net/admission.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace keel {
namespace {
constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// The raw address bytes that count as one client, or empty for none (Unix sockets).
std::string address_key(const Endpoint& peer) {
  if (peer.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(peer.sockaddr_ptr());
    return std::string(reinterpret_cast<const char*>(&in->sin_addr), 4);
  }
  if (peer.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(peer.sockaddr_ptr());
    const auto* a = reinterpret_cast<const char*>(in6->sin6_addr.s6_addr);
    if (std::memcmp(a, kMappedPrefix, 12) == 0) return std::string(a + 12, 4);
    return std::string(a, 16);
  }
  return {};
}
}  // namespace

const char* to_string(Refusal reason) noexcept {
  switch (reason) {
    case Refusal::max_connections: return "over --max-connections";
    case Refusal::per_address: return "over --max-connections-per-ip";
    case Refusal::fd_exhaustion: return "out of file descriptors (EMFILE/ENFILE)";
  }
  return "refused";
}

bool PerAddressLimit::try_acquire(const Endpoint& peer) {
  std::string key = address_key(peer);
  if (key.empty()) return true;
  std::lock_guard lock(mutex_);
  size_t& n = counts_[key];
  if (n >= limit_) {
    if (n == 0) counts_.erase(key);
    return false;
  }
  ++n;
  return true;
}

void PerAddressLimit::release(const Endpoint& peer) {
  std::string key = address_key(peer);
  if (key.empty()) return;
  std::lock_guard lock(mutex_);
  auto it = counts_.find(key);
  if (it == counts_.end()) return;
  if (--it->second == 0) counts_.erase(it);
}

size_t PerAddressLimit::count(const Endpoint& peer) const {
  std::string key = address_key(peer);
  std::lock_guard lock(mutex_);
  auto it = counts_.find(key);
  return it == counts_.end() ? 0 : it->second;
}

void discard_received(int fd) noexcept {
  char sink[4096];
  for (int i = 0; i < 4; ++i)
    if (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) return;
}

void refuse_socket(Socket socket, std::string_view line, Stream* stream) {
  const int fd = socket.fd();
  if (line.empty() || fd < 0) return;  // the socket closes here
  discard_received(fd);
  [[maybe_unused]] ssize_t n =
      stream ? stream->write(fd, line.data(), line.size())
             : ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
}  // the socket closes here

}  // namespace keel
