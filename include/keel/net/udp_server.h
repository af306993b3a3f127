// UdpServer: serves a DatagramService on one or more udp: endpoints with the loops of a LoopPool.
// Each endpoint is one UdpSocket on one loop (endpoints spread round robin), or with
// socket_per_loop one SO_REUSEPORT socket per loop on the same port (the kernel spreads
// datagrams by source address). A reply goes out of the socket the request came in on, so the
// client sees it come from the address it sent to.
// Thread safety: start() and stop() from the owning thread (not a pool loop); endpoints() after
// start(); send_to() from any thread; stats() from any thread once start() has returned.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "keel/datagram_service.h"
#include "keel/net/endpoint.h"
#include "keel/net/loop_pool.h"
#include "keel/net/udp_socket.h"

namespace keel {

struct UdpServerOptions {
  std::vector<Endpoint> listen;  // udp: endpoints
  UdpSocketOptions socket;
  // One SO_REUSEPORT socket per loop for each endpoint instead of one socket per endpoint.
  bool socket_per_loop = false;
};

class UdpServer {
 public:
  // service must outlive the server.
  UdpServer(LoopPool& pool, UdpServerOptions options, DatagramService& service);
  ~UdpServer();
  UdpServer(const UdpServer&) = delete;
  UdpServer& operator=(const UdpServer&) = delete;

  // Binds every endpoint (a failure throws Error naming it and leaves nothing bound), then
  // starts reading on the pool's loops. The pool may be started before or after.
  void start();
  // Stops reading, sends what is queued, closes the sockets. Idempotent; the destructor calls it.
  void stop();

  // The endpoints as bound (port 0 replaced by the kernel's choice), in the order given.
  const std::vector<Endpoint>& endpoints() const noexcept { return bound_; }

  // Sends bytes to peer from the socket of endpoints()[endpoint_index], on that socket's loop
  // (a later turn; the bytes are copied). False when the server is not running, the index is
  // out of range or the datagram is over the UDP maximum; later drops show in stats().
  bool send_to(const Endpoint& peer, std::string_view bytes, size_t endpoint_index = 0);

  // Summed over every socket.
  UdpStats stats() const noexcept;

 private:
  struct Bound {
    size_t endpoint_index;
    std::shared_ptr<UdpSocket> socket;  // shared with closures posted by send_to
  };

  LoopPool& pool_;
  UdpServerOptions options_;
  DatagramService& service_;
  std::vector<Endpoint> bound_;
  std::vector<Bound> sockets_;  // set by start(), kept until destruction (stats read them)
  std::atomic<bool> running_{false};
  bool started_ = false;
};

}  // namespace keel
