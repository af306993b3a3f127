// Attachable: a service whose clients an operator can take over one at a time (`keel ctl
// attach`): the hub. Optional, like OperatorHooks: the admin endpoint finds it with
// attachable(service) and refuses `attach` for services without it.
// Thread safety: called from the admin endpoint's thread while the service runs; guard shared
// state.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "keel/net/connection_id.h"
#include "keel/operator_stream.h"
#include "keel/service.h"

namespace keel {

class Attachable {
 public:
  struct Attached {
    size_t held_bytes = 0;  // bytes held while parked, posted to the stream first
  };

  // Starts stream's session with client id: what the client sent while parked is posted first,
  // then what it sends from now on, until one side ends the session. Sets the stream's
  // callbacks. Returns nullopt and sets *refusal when the client is unknown or already held by
  // another operator ("client 17 is attached by alice (uid 1000, pid 42) since ...").
  virtual std::optional<Attached> attach(ConnectionId id, std::shared_ptr<OperatorStream> stream,
                                         std::string* refusal) = 0;
  // "lines", "length" or "binary": how the client's messages are framed.
  virtual const char* framing_name() const noexcept = 0;
  // One message from the operator as the client receives it (text + "\n", a length-prefixed
  // frame, or the bytes as they are with binary framing).
  virtual std::string frame_message(std::string_view message) const = 0;

 protected:
  ~Attachable() = default;
};

// The service's Attachable, or nullptr when its clients cannot be attached.
inline Attachable* attachable(Service& service) noexcept {
  return dynamic_cast<Attachable*>(&service);
}

}  // namespace keel
