// Echo over UDP: every datagram goes back to its sender, whole, from the address it was sent to.
// Protocol: none; any bytes, one datagram at a time. Nothing is kept between datagrams; a
// datagram over the server's receive size is dropped (counted as truncated), not echoed in part.
// Thread safety: stateless; any number of sockets on any loops may call it at once.
#pragma once

#include "keel/datagram_service.h"

namespace keel {

class DatagramEchoService final : public DatagramService {
 public:
  const char* name() const noexcept override { return "echo"; }
  void on_datagram(DatagramSender& socket, const Endpoint& peer, std::string_view bytes) override {
    socket.send_to(peer, bytes);
  }
};

}  // namespace keel
