// TcpClient: one outgoing connection on an EventLoop: non-blocking connect with a timeout, and
// optional retry with exponential back-off. The established connection is a TcpConnection.
// Thread safety: loop-thread only, including construction and destruction (or before the loop
// runs). The destructor force-closes the connection and cancels pending attempts.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "keel/net/endpoint.h"
#include "keel/net/event_loop.h"
#include "keel/net/socket.h"
#include "keel/net/stream.h"
#include "keel/net/tcp_connection.h"

namespace keel {

struct ClientOptions {
  SocketOptions socket;
  std::chrono::milliseconds connect_timeout{5000};
  // Retry failed connects: first after initial_backoff, doubling up to max_backoff.
  bool retry = false;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  int max_attempts = 0;  // 0 = no limit (with retry)
  size_t high_water_bytes = 1 << 20;
  // Source address to connect from (port 0: the kernel picks the port at connect time, so many
  // source addresses can each use the whole ephemeral port range).
  std::optional<Endpoint> bind_to;
  // TLS: what the connection's bytes pass through. Its pre-open stage (the handshake) is part
  // of connecting: a failure there is a failed attempt (retried like a refused connect).
  StreamOptions stream;
};

class TcpClient final : private IoHandler {
 public:
  // Called for each failed attempt; will_retry says whether another attempt is scheduled.
  using ConnectFailed =
      std::function<void(const CloseReason& reason, int attempt, bool will_retry)>;

  // Throws Error for a udp: server endpoint.
  TcpClient(EventLoop& loop, Endpoint server, ClientOptions options, ConnectionCallbacks callbacks,
            ConnectFailed on_connect_failed = {});
  ~TcpClient();
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  // Starts the first attempt (on a later turn of the loop).
  void connect();
  // Cancels attempts and force-closes the connection, if any.
  void stop();

  // The established connection, or an invalid id.
  ConnectionId connection() const noexcept { return connection_; }
  int attempts() const noexcept { return attempts_; }

 private:
  void attempt();
  void handle_events(uint32_t events) override;
  void fail(CloseReason reason);
  void cancel_pending();

  EventLoop& loop_;
  Endpoint server_;
  ClientOptions options_;
  ConnectionCallbacks callbacks_;
  ConnectionCallbacks wrapped_;
  ConnectFailed on_connect_failed_;
  Socket pending_;
  TimerId timeout_timer_ = 0;
  TimerId retry_timer_ = 0;
  ConnectionId connection_;
  std::chrono::milliseconds backoff_;
  int attempts_ = 0;
  bool stopped_ = false;
};

}  // namespace keel
