// RemoteRoster: what this chat node knows of the members on the other nodes of its cluster
// (nick and room by node and connection id), kept from their events: roster (a node's whole
// list, sent when another node says hello), joined, left, renamed, gone, and any event as a
// sign of life. It answers /who, /rooms and "is this nick anywhere" for the whole cluster.
// A node silent for longer than the expiry is taken as dead and its members are dropped.
// Thread safety: none; ChatService guards it with its mutex.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace keel::chat {

class RemoteRoster {
 public:
  using Clock = std::chrono::steady_clock;
  struct Member {
    std::string nick;  // as chosen (case kept)
    std::string room;  // "#name", or empty
  };
  struct Departed {
    std::string node;
    Member member;
  };

  // Any event of node at now: it is alive.
  void seen(const std::string& node, Clock::time_point now);
  // args: (id, nick, room) triples, as in a roster event. Replaces what was known of node.
  void replace(const std::string& node, const std::vector<std::string>& args);
  void joined(const std::string& node, const std::string& id, const std::string& nick,
              const std::string& room);
  void left(const std::string& node, const std::string& id);
  // A nick change (room: the member's room, may be empty).
  void renamed(const std::string& node, const std::string& id, const std::string& nick,
               const std::string& room);
  // The node is gone: its members, for notices.
  std::vector<Departed> drop(const std::string& node);
  // Nodes not seen since before: dropped, their members returned.
  std::vector<Departed> expire(Clock::time_point before);

  // The nicks in room on other nodes, sorted.
  std::vector<std::string> nicks_in(std::string_view room) const;
  // Members per room on other nodes.
  std::map<std::string, size_t> room_sizes() const;
  // The node holding nick (compared lower-case), or empty. One lookup, not a scan: /msg asks
  // it for every private line.
  std::string node_of(std::string_view lower_nick) const;
  size_t node_count() const { return nodes_.size(); }
  size_t member_count() const;

 private:
  struct Node {
    std::unordered_map<std::string, Member> members;  // by connection id (as text)
    Clock::time_point last_seen{};
  };
  // Sets (or, with an empty nick, erases) member id of node, keeping by_nick_ in step.
  void set(Node& n, const std::string& node, const std::string& id, const std::string& nick,
           const std::string& room);
  void unindex(const std::string& node, const Node& n);

  std::map<std::string, Node> nodes_;
  // Lower-case nick -> node, one entry per member (a nick may be held on two nodes for a moment,
  // while a dead node's lease runs out).
  std::unordered_multimap<std::string, std::string> by_nick_;
};

// Lower-case ASCII (nicks and rooms compare so).
std::string lower_ascii(std::string_view s);

}  // namespace keel::chat
