// DatagramService: what a UDP server does with each datagram. Datagrams are not streams: there
// is no connection, no open or close, no ordering and no backpressure, so UDP gets this small
// hook instead of keel::Service. A service receives whole datagrams with the sender's address
// and answers through the DatagramSender (the socket the datagram arrived on).
// Thread safety: a service whose sockets sit on several loops is called from each of those
// threads, but never concurrently for the same socket; state shared across sockets needs its
// own guard. DatagramSender methods: only on the socket's loop thread (i.e. inside on_datagram).
#pragma once

#include <string_view>

#include "keel/net/endpoint.h"

namespace keel {

// The socket a datagram arrived on, as a service sees it.
class DatagramSender {
 public:
  // Sends bytes as one datagram to peer. Never blocks: inside on_datagram the datagram is
  // queued and the whole batch's replies go out together (sendmmsg) once the batch has been
  // delivered; elsewhere it is sent at once. A datagram the kernel will not take right now
  // (send buffer full: EAGAIN/ENOBUFS) is dropped and counted, as UDP allows. Returns false
  // when it is refused before reaching the kernel (over 65,507 bytes, or the socket stopped);
  // later failures show only in the socket's stats.
  virtual bool send_to(const Endpoint& peer, std::string_view bytes) = 0;
  // The address the socket is bound to (port 0 replaced by the kernel's choice).
  virtual const Endpoint& local_endpoint() const noexcept = 0;

 protected:
  ~DatagramSender() = default;
};

class DatagramService {
 public:
  virtual ~DatagramService() = default;
  virtual const char* name() const noexcept = 0;
  // One whole datagram (possibly empty) from peer, a udp: endpoint. A datagram larger than the
  // socket's receive size is never delivered: it is counted as truncated instead. bytes are
  // valid only during the call.
  virtual void on_datagram(DatagramSender& socket, const Endpoint& peer,
                           std::string_view bytes) = 0;
};

}  // namespace keel
