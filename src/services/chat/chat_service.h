// Chat: rooms, nicknames and private messages over a line (or length-framed) protocol usable
// from `keel cat`, nc or telnet. Protocol: docs/protocols.md, "Chat protocol".
//   client: /nick NAME, /join ROOM, /leave, /rooms, /who, /msg NICK TEXT, /me TEXT, /quit, /help,
//           or plain text (to the current room).
//   server: "<nick> text" (room), "<nick> (private) text", "* notice", "! error".
// Guarantees: every member of a room receives each message of that room once, whole, and in the
// order its sender sent it (all state changes happen under one mutex; what a change sends is
// queued under it and sent, in order, by the same thread once the mutex is released, so no
// socket call is made under the lock and loops fan out in parallel; each connection's sends
// travel one FIFO path). A member whose queued output passes the limit is
// sent a reason line and disconnected; the room goes on. Lines over max_line_bytes get an error
// line and a close, so no client can grow the server's memory. With an input rate (flood
// control), a client sending faster than its budget has its reading paused until the budget
// refills: it is slowed down, and nothing it sent is lost.
// Thread safety: any loop thread; state is guarded by mutex_.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "keel/operator.h"
#include "keel/service.h"
#include "services/chat/framing.h"
#include "services/chat/remote_roster.h"
#include "services/common/input_budget.h"

namespace keel::cluster {
class ClusterLink;
struct NodeEvent;
}  // namespace keel::cluster

namespace keel::chat {

struct ChatOptions {
  Framing framing = Framing::lines;
  size_t max_line_bytes = 4096;
  // Each client's input budget (flood control); off by default here, on by default in `keel`.
  InputRate input_rate;
};

class ChatService final : public Service, public OperatorHooks {
 public:
  explicit ChatService(ChatOptions options = {}) : options_(options) {}

  const char* name() const noexcept override { return "chat"; }
  void on_open(Server& server, const ConnectionInfo& info) override;
  void on_data(Server& server, ConnectionId id, Buffer& in) override;
  void on_peer_closed(Server& server, ConnectionId id) override;
  void on_close(Server& server, ConnectionId id, const CloseReason& reason) override;
  Overflow overflow() const noexcept override { return Overflow::disconnect; }
  std::string overflow_line(size_t queued_bytes) const override;
  // "* server going down" before the drain closes each member.
  std::string drain_line() const override;
  // "! keel: too many connections from your address" / "! keel: server full, try again later"
  std::string refusal_line(Refusal reason) const override;

  // OperatorHooks: nick and room columns, "* operator: ..." lines, rooms.
  void describe(ConnectionId id, Fields& fields) const override;
  std::string operator_line(std::string_view text) const override;
  std::string kick_line(std::string_view reason) const override;
  std::optional<std::vector<ConnectionId>> room_members(std::string_view room) const override;
  // A message is a line (or frame): in, every non-empty line a client sent; out, every line
  // delivered to a client (a room line to 5 members is 5).
  std::optional<MessageCounts> message_counts() const override;
  std::optional<ClusterStatus> cluster_status() const override;

  // Valid nickname / room name (room without its leading '#'): 1-32 of [A-Za-z0-9_.-].
  static bool valid_name(std::string_view name);

  // Cluster (docs/operations.md, "Running a cluster"): rooms, nicks and private messages span
  // every node on the link. Call before the engine starts; the link's events go to
  // on_cluster_event, its state to on_cluster_state, names it lost to on_names_lost
  // (cli/cluster_flags.cc wires a Backplane so).
  void join_cluster(cluster::ClusterLink& link);
  void on_cluster_event(const cluster::NodeEvent& event);
  void on_cluster_state(bool up);
  void on_names_lost(const std::vector<std::string>& lower_nicks);
  // Drops nodes silent for longer than node_timeout (run every second on the backplane loop).
  void expire_nodes(std::chrono::milliseconds node_timeout);

 private:
  struct Member {
    explicit Member(InputBudget b) : budget(b) {}
    std::string nick;      // empty until /nick
    std::string room;      // "#name", empty when in no room
    std::string claiming;  // a nick being claimed in the cluster, until Redis answers
    // Lines that came after the /nick being claimed: handled, in order, once it is answered
    // (reading is paused meanwhile, so they are at most what one read brought).
    std::deque<std::string> held;
    bool closing = false;
    InputBudget budget;
  };
  using Room = std::vector<ConnectionId>;
  // A room's members as of a change: copied on join and leave, shared by the sends queued
  // while it was current (a line to a room of 1,000 queues a pointer, not 1,000 ids).
  using RoomSnapshot = std::shared_ptr<const Room>;

  // One thing a handler does to connections, in the order it did it.
  struct Outgoing {
    enum class Kind : uint8_t { send, send_room, shutdown, pause, resume };
    Kind kind;
    Server* server;
    ConnectionId id;       // all but send_room
    RoomSnapshot members;  // send_room
    std::string bytes;     // send, send_room
  };
  // mutex_, held; on destruction it is released and then what was queued under it goes out.
  class Locked;
  // Sends out, in order (mutex_ not held).
  void deliver(std::vector<Outgoing>& out);
  void queue(Outgoing::Kind kind, Server& server, ConnectionId id) {
    outbox_.push_back({kind, &server, id, nullptr, {}});
  }

  // Each runs with mutex_ held.
  void handle_line(Server& server, ConnectionId id, Member& m, std::string_view line);
  void command(Server& server, ConnectionId id, Member& m, std::string_view cmd,
               std::string_view arg);
  void set_nick(Server& server, ConnectionId id, Member& m, std::string_view nick);
  void join(Server& server, ConnectionId id, Member& m, std::string_view room);
  void leave(Server& server, ConnectionId id, Member& m, std::string_view why);
  // The member is going away: leaves its room (others are told why) and frees its nickname.
  void depart(Server& server, ConnectionId id, Member& m, std::string_view why);
  void private_message(Server& server, ConnectionId id, Member& m, std::string_view arg);
  void reply(Server& server, ConnectionId id, std::string_view text);
  // FIN once what was queued for id before has gone out.
  void finish(Server& server, ConnectionId id) { queue(Outgoing::Kind::shutdown, server, id); }
  void to_room(Server& server, const std::string& room, std::string_view text);
  void close_with_error(Server& server, ConnectionId id, Member& m, std::string_view text);
  // The task that lifts a flood-control pause of id (takes mutex_ itself).
  Server::TimerTask budget_wake(Server& server, ConnectionId id);
  // The cluster's side of each change (no-ops without a backplane).
  void claim_nick(Server& server, ConnectionId id, Member& m, std::string nick);
  void apply_nick(Server& server, ConnectionId id, Member& m, const std::string& nick);
  // The claim is answered: the lines held meanwhile are handled, and reading resumes.
  void release_held(ConnectionId id, Member& m);
  void publish_roster();
  void publish(int kind, std::vector<std::string> args);  // kind: cluster::EventKind
  void remote_departures(const std::vector<RemoteRoster::Departed>& gone, std::string_view why);

  ChatOptions options_;
  mutable std::mutex mutex_;
  uint64_t lines_in_ = 0;               // guarded by mutex_
  std::atomic<uint64_t> lines_out_{0};  // counted as lines go out, after mutex_ is released
  std::vector<Outgoing> outbox_;        // guarded by mutex_; empty whenever it is free
  std::unordered_map<ConnectionId, Member> members_;
  std::unordered_map<std::string, ConnectionId> nicks_;  // lower-cased nick -> member
  std::map<std::string, RoomSnapshot> rooms_;            // "#name" -> members, in join order
  // Cluster: null when alone. server_ is the engine, kept from on_open for deliveries of other
  // nodes' events (which come outside any callback).
  cluster::ClusterLink* cluster_ = nullptr;
  Server* server_ = nullptr;
  RemoteRoster remote_;
  std::chrono::steady_clock::time_point up_since_{};  // zero while the link is down
};

class ChatService::Locked {
 public:
  explicit Locked(ChatService& chat) : chat_(chat), lock_(chat.mutex_) {}
  ~Locked() {
    if (chat_.outbox_.empty()) return;
    std::vector<Outgoing> out;
    out.swap(chat_.outbox_);
    lock_.unlock();
    chat_.deliver(out);
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  ChatService& chat_;
  std::unique_lock<std::mutex> lock_;
};

}  // namespace keel::chat
