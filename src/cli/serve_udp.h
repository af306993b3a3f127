// The udp: listeners of keel echo / serve: split out of the stream listeners and served by a
// UdpServer on an event loop of their own, next to whichever engine (--model) serves the rest.
// Thread safety: the main thread only.
#pragma once

#include <memory>
#include <vector>

#include "keel/datagram_service.h"
#include "keel/net/endpoint.h"
#include "keel/net/loop_pool.h"
#include "keel/net/udp_server.h"

namespace keel::cli {

class DatagramListeners {
 public:
  DatagramListeners() = default;
  ~DatagramListeners();
  DatagramListeners(const DatagramListeners&) = delete;
  DatagramListeners& operator=(const DatagramListeners&) = delete;

  // Serves endpoint (a udp: one) with service. Throws Error naming the endpoint when the
  // service has no datagram side (service == nullptr), e.g. chat.
  void add(const char* service_name, DatagramService* service, const Endpoint& endpoint);
  bool empty() const noexcept { return wanted_.empty(); }

  // Binds every endpoint (throws Error naming one that fails), then starts the loop.
  void start();
  // One "NAME listening on udp:HOST:PORT (datagrams, a loop of their own)" log line per socket.
  void log_listening() const;
  // Stops reading and closes the sockets; logs each service's counters. Idempotent.
  void stop();

 private:
  struct Wanted {
    DatagramService* service;
    std::vector<Endpoint> endpoints;
  };
  std::vector<Wanted> wanted_;
  std::unique_ptr<LoopPool> pool_;
  std::vector<std::unique_ptr<UdpServer>> servers_;
};

}  // namespace keel::cli
