// NodeEvent: what one keel node tells the others through Redis (docs/protocols.md, "Cluster
// events"). One event is one stream entry; its bytes are:
//   'K' '1'  kind:u8  seq:u64  node_len:u8 node  count:u32  (len:u32 bytes){count}
// integers big-endian. seq counts the events of one node (1, 2, ...): a receiver delivers an
// event only if its seq is above the last it saw from that node, so an event written twice
// (a reply lost as Redis went down, the write repeated) is delivered once, and order is the
// node's. The arguments' meaning depends on the kind (listed below). Decoding checks every
// length against the bytes present and the limits: events come from the network.
// Thread safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel::cluster {

enum class EventKind : uint8_t {
  hello = 1,         // a node (re)joined: others answer with a roster. args: -
  heartbeat = 2,     // the node is alive. args: -
  roster = 3,        // the node's members. args: (id, nick, room) per member; room may be empty
  joined = 4,        // args: id, nick, room
  left = 5,          // args: id, nick, room, why
  renamed = 6,       // args: id, new nick (empty: gone), room (may be empty), old nick
  room_line = 7,     // a line for a room's members. args: room, line (as sent to clients)
  private_line = 8,  // args: target nick (lower-case), line, sender nick
  gone = 9,          // the node is stopping: drop its members now. args: -
  op_request = 10,   // an operator's request (keel ctl) for other nodes. args: request id,
                     // target node (empty: every node), the request (admin protocol JSON)
  op_reply = 11,     // args: request id, the node that asked, the reply (admin protocol JSON)
  op_session = 12,   // an operator's session with a client on another node (hub attach).
                     // args: session id, the node it is for, verb, and the verb's arguments
                     // (OperatorRelay: "event"/"end" with an event, "credit" N, "left")
};
constexpr uint8_t kLastEventKind = 12;

struct NodeEvent {
  EventKind kind = EventKind::heartbeat;
  uint64_t seq = 0;
  std::string node;
  std::vector<std::string> args;
};

constexpr size_t kMaxNodeNameBytes = 64;
constexpr size_t kMaxEventArgs = 3 * 100'000 + 1;  // a roster of 100,000 members
constexpr size_t kMaxEventBytes = 16u << 20;

std::string encode(const NodeEvent& event);
// nullopt with *why set when bytes are not a well-formed event.
std::optional<NodeEvent> decode_event(std::string_view bytes, std::string* why);
const char* to_string(EventKind kind);

}  // namespace keel::cluster
