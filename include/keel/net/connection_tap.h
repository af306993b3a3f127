// ConnectionTap: a copy of one connection's traffic for an operator watching it (keel ctl
// watch). An engine that can tap (Engine::can_tap) hands the tap set on a connection every chunk
// it reads from the client and every chunk the client is sent, then tells it once how the
// connection ended. A connection without a tap pays one predictable branch per read and per
// send for this.
// Thread safety: on_bytes and on_end may be called from any thread, and for one connection
// from two threads (the threads engine taps input on the connection's thread and output on the
// sending thread, under the connection's mutex): implementations must not block, must not call
// back into the engine, and must order what they receive themselves.
#pragma once

#include <cstdint>
#include <string_view>

namespace keel {

class ConnectionTap {
 public:
  enum class Direction : uint8_t {
    in,   // read from the client
    out,  // sent to the client (when the service or operator sends it; it may still be queued)
  };

  virtual ~ConnectionTap() = default;
  // The tap is in place: every byte read or sent from now on reaches on_bytes.
  virtual void on_installed() noexcept {}
  // bytes: valid during the call only.
  virtual void on_bytes(Direction direction, std::string_view bytes) noexcept = 0;
  // The connection closed (why: CloseReason::to_string()); the last call. Not called for a tap
  // that was removed or replaced first.
  virtual void on_end(std::string_view why) noexcept = 0;
};

}  // namespace keel
