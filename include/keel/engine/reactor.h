// ReactorEngine: drives a Service with event loops (a LoopPool) through a TcpServer.
// Thread safety: start(), drain() and stop() from the owning thread; the Server methods from any
// thread (on the connection's own loop they act at once, elsewhere they are posted).
#pragma once

#include <chrono>
#include <vector>

#include "keel/net/loop_pool.h"
#include "keel/net/tcp_server.h"
#include "keel/service.h"

namespace keel {

class ReactorEngine final : public Server {
 public:
  // The service and pool must outlive the engine.
  ReactorEngine(LoopPool& pool, ServerOptions options, Service& service);

  // Binds every endpoint (throws Error) and starts accepting.
  void start() { server_.start(); }
  const std::vector<Endpoint>& endpoints() const noexcept { return server_.endpoints(); }
  size_t drain(std::chrono::milliseconds timeout) { return server_.drain(timeout); }
  void stop() { server_.stop(); }
  TcpServer& server() noexcept { return server_; }
  Service& service() noexcept { return service_; }

  bool send(ConnectionId id, std::string_view bytes) override;
  bool shutdown(ConnectionId id) override { return server_.shutdown(id); }
  bool close(ConnectionId id, std::string_view reason) override {
    return server_.close(id, reason);
  }
  size_t send_many(const std::vector<ConnectionId>& ids, std::string_view bytes) override {
    return server_.pool().send_many(ids, bytes);
  }

  // How long a slow consumer (Overflow::disconnect) gets to read its reason line.
  static constexpr std::chrono::milliseconds kEvictGrace{2000};

 private:
  ConnectionCallbacks callbacks_for_service();

  Service& service_;
  TcpServer server_;
};

}  // namespace keel
