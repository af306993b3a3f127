// Acceptor: one listening socket watched by one loop. Accepted sockets go to TcpServer.
// EMFILE/ENFILE: a reserve descriptor is given up to accept and close the pending connection
// (so the client sees a close, not a hang, and the listener stops being readable); if even that
// fails, accepting pauses for a back-off period instead of spinning. With
// ServerOptions::reserved_fds, that many more reserve descriptors are kept to serve (not shed)
// clients through EMFILE: the admin endpoint stays reachable when the services are out of them.
// Thread safety: loop-thread only, after construction.
#pragma once

#include <vector>

#include "keel/net/event_loop.h"
#include "keel/net/socket.h"

namespace keel {

class TcpServer;

class Acceptor final : private IoHandler {
 public:
  Acceptor(TcpServer& server, EventLoop& loop, Socket listener);
  ~Acceptor();

  EventLoop& loop() noexcept { return loop_; }
  void start();
  void stop();

 private:
  void handle_events(uint32_t events) override;
  // Returns false when the reserve trick could not shed the connection.
  bool shed_one();
  void back_off();
  // EMFILE with a serving reserve left: gives one up to accept a client and serve it. False
  // when none is left or the accept still failed.
  bool accept_with_reserve();
  // Reopens the serving reserves given up (when descriptors are free again).
  void refill_reserves();

  TcpServer& server_;
  EventLoop& loop_;
  Socket listener_;
  int reserve_fd_ = -1;
  std::vector<int> serving_reserves_;  // ServerOptions::reserved_fds of them, when available
  const int ceiling_;                  // accepted descriptors from here on are shed (fd_headroom)
  TimerId backoff_timer_ = 0;
  bool watching_ = false;
};

}  // namespace keel
