// OperatorHooks: what a service may add for the operator (`keel ctl` and the admin endpoint):
// columns in `list`, the wording of operator text and kicks, and rooms. Optional: a service
// implements it next to keel::Service when it has something to say; the admin endpoint finds it
// with operator_hooks(service) and uses plain defaults otherwise. Engines never look at it.
// Thread safety: called from the admin endpoint's thread while the service runs; guard shared
// state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/net/connection_id.h"

namespace keel {

class Service;

// Messages a service counts itself (chat: lines), since it started.
struct MessageCounts {
  uint64_t in = 0;   // received from clients
  uint64_t out = 0;  // delivered to clients (a line to a room of 5 is 5)
};

// A service spread over several nodes (chat with --redis): this node's link to the others.
struct ClusterStatus {
  std::string node;             // this node's name
  bool up = false;              // the link to Redis answers
  size_t nodes = 1;             // nodes this one knows of, itself included
  uint64_t published = 0;       // events written to Redis
  uint64_t delivered = 0;       // other nodes' events received
  uint64_t dropped_events = 0;  // this node's own not written (outage buffer full, refused)
  uint64_t lost_events = 0;     // other nodes' events missed (a gap in a node's numbers)
  uint64_t reconnects = 0;      // times the link came back
  size_t buffered_bytes = 0;    // events waiting for the link
  std::string last_error;       // why the link is down
};

class OperatorHooks {
 public:
  using Fields = std::vector<std::pair<std::string, std::string>>;

  // Service-specific columns of `keel ctl list`, e.g. {"nick","alice"}, {"room","#lobby"}.
  virtual void describe(ConnectionId, Fields&) const {}
  // What a client receives when an operator sends it text (`keel ctl send`, `broadcast`).
  virtual std::string operator_line(std::string_view text) const {
    return std::string(text) + "\n";
  }
  // Sent to a client before an operator's kick closes it (empty: nothing).
  virtual std::string kick_line(std::string_view /*reason*/) const { return {}; }
  // The connections in a room (`keel ctl broadcast --room R`); nullopt for a service that has
  // no rooms at all, an empty list for a room nobody is in.
  virtual std::optional<std::vector<ConnectionId>> room_members(std::string_view /*room*/) const {
    return std::nullopt;
  }
  // What a message is for this service, counted by it (`keel ctl stats`, /metrics); nullopt:
  // the engine's counts stand in (a read that delivered bytes, a send call).
  virtual std::optional<MessageCounts> message_counts() const { return std::nullopt; }
  // The cluster link's state (`keel ctl stats`, /metrics); nullopt for a service alone.
  virtual std::optional<ClusterStatus> cluster_status() const { return std::nullopt; }

 protected:
  ~OperatorHooks() = default;
};

// The hooks service implements, or defaults (no columns, text + "\n", no kick line, no rooms).
const OperatorHooks& operator_hooks(const Service& service) noexcept;

}  // namespace keel
