// Acceptor: one listening socket watched by one loop. Accepted sockets go to TcpServer.
// EMFILE/ENFILE: a reserve descriptor is given up to accept and close the pending connection
// (so the client sees a close, not a hang, and the listener stops being readable); if even that
// fails, accepting pauses for a back-off period instead of spinning.
// Thread safety: loop-thread only, after construction.
#pragma once

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

  TcpServer& server_;
  EventLoop& loop_;
  Socket listener_;
  int reserve_fd_ = -1;
  TimerId backoff_timer_ = 0;
  bool watching_ = false;
};

}  // namespace keel
