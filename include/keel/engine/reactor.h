// ReactorEngine: drives a Service with event loops (a LoopPool) through a TcpServer: every
// connection lives on one loop, all its callbacks run there, nothing blocks.
// Thread safety: start(), adopt(), stop_accepting(), drain() and stop() from the owning thread
// (not a pool loop); the Server verbs from any thread (on the connection's own loop they act at
// once, elsewhere they are posted); visit() and stats() from any thread but a pool loop.
#pragma once

#include <atomic>
#include <chrono>
#include <vector>

#include "keel/engine/engine.h"
#include "keel/net/loop_pool.h"
#include "keel/net/tcp_server.h"
#include "keel/service.h"

namespace keel {

class ReactorEngine final : public Engine {
 public:
  // The service and pool must outlive the engine.
  ReactorEngine(LoopPool& pool, ServerOptions options, Service& service);

  const char* model() const noexcept override { return "reactor"; }
  Service& service() noexcept override { return service_; }
  void start() override { server_.start(); }
  const std::vector<Endpoint>& endpoints() const noexcept override { return server_.endpoints(); }
  void stop_accepting() override { server_.stop_accepting(); }
  size_t drain(std::chrono::milliseconds timeout) override {
    return server_.drain(timeout, {service_.drain() == Service::Drain::finish,
                                   service_.drain() == Service::Drain::close ? service_.drain_line()
                                                                             : std::string()});
  }
  void stop() override { server_.stop(); }
  EngineStats stats() const override;
  EngineTraffic traffic() override;
  size_t connection_count() const noexcept override { return server_.connection_count(); }
  void visit(const std::function<void(const ClientSnapshot&)>& fn) override;

  // Serves a socket accepted elsewhere (a process-per-connection child) as if accepted here.
  void adopt(Socket socket) { server_.adopt(std::move(socket)); }
  TcpServer& server() noexcept { return server_; }

  bool send(ConnectionId id, std::string_view bytes) override;
  bool send_file(ConnectionId id, FileRegion region) override;
  bool shutdown(ConnectionId id) override;
  bool close(ConnectionId id, std::string_view reason) override;
  size_t send_many(const std::vector<ConnectionId>& ids, std::string_view bytes) override {
    return server_.pool().send_many(ids, bytes);
  }
  bool close_gracefully(ConnectionId id, std::string_view last_line, std::string_view reason,
                        std::chrono::milliseconds grace) override;
  bool pause_reading(ConnectionId id) override;
  bool resume_reading(ConnectionId id) override;
  TimerId start_timer(ConnectionId id, std::chrono::milliseconds delay, TimerTask fn) override;
  void cancel_timer(ConnectionId id, TimerId timer) override;
  bool can_tap() const noexcept override { return true; }
  bool set_tap(ConnectionId id, std::unique_ptr<ConnectionTap> tap) override;
  bool clear_tap(ConnectionId id, const ConnectionTap* tap) override;

  // How long a slow consumer (Overflow::disconnect) gets to read its reason line.
  static constexpr std::chrono::milliseconds kEvictGrace{2000};

 private:
  ConnectionCallbacks callbacks_for_service();
  // The connection whose callback runs on this thread, if it is id on this engine (a reply
  // skips the lookup); null otherwise.
  TcpConnection* current_if(ConnectionId id) noexcept;
  // Runs fn on id's loop (now when called there, else posted) if id is live; false if stale.
  bool with_connection(ConnectionId id, std::function<void(TcpConnection&)> fn);

  Service& service_;
  TcpServer server_;
  std::atomic<uint64_t> slow_consumer_drops_{0};
};

// Loop thread of c: sends last_line (if any), finishes c gracefully and closes it if it has not
// finished within grace. Kicks and slow-consumer evictions end this way under every engine.
void finish_with_last_line(TcpConnection& c, std::string_view last_line, std::string_view reason,
                           std::chrono::milliseconds grace);

}  // namespace keel
