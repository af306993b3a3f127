// Admission: the limits a server puts on who may connect (a total cap, a cap per client
// address) and how it turns a client away: what it is told, and that it is told at once.
// Thread safety: PerAddressLimit from any thread (one mutex, taken when a connection opens and
// when it closes, never on the data path); refuse_socket on the caller's socket only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "keel/net/endpoint.h"
#include "keel/net/socket.h"
#include "keel/net/stream.h"

namespace keel {

// Why a connection was turned away before its service saw it. (Connections closed in the
// pre-open stage, TLS handshake or PROXY header, are counted as open failures instead.)
enum class Refusal : uint8_t {
  max_connections,  // the server already had --max-connections
  per_address,      // its address already had --max-connections-per-ip
  fd_exhaustion,    // accept failed with EMFILE/ENFILE: the client is shed with a reserve fd
};
// "over --max-connections", "over --max-connections-per-ip", "out of file descriptors"
const char* to_string(Refusal reason) noexcept;

// Counts open connections per client address and refuses one more than `limit` from the same
// address. The address is the host only (the port is ignored): an IPv4 address, or an IPv6
// address by all of its 128 bits (an IPv4-mapped IPv6 address counts as its IPv4 address).
// Unix-socket peers have no address and are never limited.
class PerAddressLimit {
 public:
  explicit PerAddressLimit(size_t limit) : limit_(limit) {}
  size_t limit() const noexcept { return limit_; }
  // Counts a connection from peer and returns true, or returns false (and counts nothing)
  // when peer's address already has limit connections.
  bool try_acquire(const Endpoint& peer);
  // Gives back what a successful try_acquire(peer) counted.
  void release(const Endpoint& peer);
  // Connections counted for peer's address now.
  size_t count(const Endpoint& peer) const;

 private:
  const size_t limit_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, size_t> counts_;  // by raw address bytes
};

// Turns away a client: writes line (if any; through stream when the connection has one, TLS)
// without blocking, then closes. Input that has already arrived is read and dropped first, so
// the close sends a FIN behind the line rather than a reset that could discard it.
void refuse_socket(Socket socket, std::string_view line, Stream* stream = nullptr);
// Reads and drops what has arrived on fd (a few KiB at most), so that closing it next sends a
// FIN behind what was written instead of a reset.
void discard_received(int fd) noexcept;

}  // namespace keel
