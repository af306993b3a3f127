// Echo: every byte received goes back, exactly and in order.
// Protocol: none; any bytes. When the client half-closes (FIN), the rest is echoed and then the
// server half-closes too. A client that sends without reading is paused at the high-water mark
// (Overflow::pause_reading), so its queued output, not the server's memory, absorbs the excess.
#pragma once

#include "keel/service.h"

namespace keel {

class EchoService final : public Service {
 public:
  const char* name() const noexcept override { return "echo"; }
  bool connections_independent() const noexcept override { return true; }
  // A client mid-stream on SIGTERM gets every byte it sends echoed until it closes.
  Drain drain() const noexcept override { return Drain::finish; }
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    server.send(id, in.view());
    in.consume_all();
  }
};

}  // namespace keel
