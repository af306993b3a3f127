#include "services/chat/remote_roster.h"

#include <algorithm>

namespace keel::chat {

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

void RemoteRoster::seen(const std::string& node, Clock::time_point now) {
  nodes_[node].last_seen = now;
}

void RemoteRoster::set(Node& n, const std::string& node, const std::string& id,
                       const std::string& nick, const std::string& room) {
  auto m = n.members.find(id);
  if (m != n.members.end()) {
    auto [first, last] = by_nick_.equal_range(lower_ascii(m->second.nick));
    for (auto it = first; it != last; ++it)
      if (it->second == node) {
        by_nick_.erase(it);
        break;
      }
    if (nick.empty()) {
      n.members.erase(m);
      return;
    }
    m->second = Member{nick, room};
  } else if (nick.empty()) {
    return;
  } else {
    n.members.emplace(id, Member{nick, room});
  }
  by_nick_.emplace(lower_ascii(nick), node);
}

void RemoteRoster::unindex(const std::string& node, const Node& n) {
  for (const auto& [id, m] : n.members) {
    auto [first, last] = by_nick_.equal_range(lower_ascii(m.nick));
    for (auto it = first; it != last; ++it)
      if (it->second == node) {
        by_nick_.erase(it);
        break;
      }
  }
}

void RemoteRoster::replace(const std::string& node, const std::vector<std::string>& args) {
  Node& n = nodes_[node];
  unindex(node, n);
  n.members.clear();
  for (size_t i = 0; i + 2 < args.size(); i += 3) set(n, node, args[i], args[i + 1], args[i + 2]);
}

void RemoteRoster::joined(const std::string& node, const std::string& id, const std::string& nick,
                          const std::string& room) {
  set(nodes_[node], node, id, nick, room);
}

void RemoteRoster::left(const std::string& node, const std::string& id) {
  // Leaving a room keeps the member (and its nick) on its node: only the room is cleared.
  auto n = nodes_.find(node);
  if (n == nodes_.end()) return;
  auto m = n->second.members.find(id);
  if (m != n->second.members.end()) m->second.room.clear();
}

void RemoteRoster::renamed(const std::string& node, const std::string& id, const std::string& nick,
                           const std::string& room) {
  // An empty nick: gone from the node (disconnected, or lost its nick).
  set(nodes_[node], node, id, nick, room);
}

std::vector<RemoteRoster::Departed> RemoteRoster::drop(const std::string& node) {
  std::vector<Departed> out;
  auto n = nodes_.find(node);
  if (n == nodes_.end()) return out;
  unindex(node, n->second);
  for (auto& [id, m] : n->second.members) out.push_back({node, std::move(m)});
  nodes_.erase(n);
  return out;
}

std::vector<RemoteRoster::Departed> RemoteRoster::expire(Clock::time_point before) {
  std::vector<Departed> out;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (it->second.last_seen < before) {
      unindex(it->first, it->second);
      for (auto& [id, m] : it->second.members) out.push_back({it->first, std::move(m)});
      it = nodes_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<std::string> RemoteRoster::nicks_in(std::string_view room) const {
  std::vector<std::string> out;
  for (const auto& [name, n] : nodes_)
    for (const auto& [id, m] : n.members)
      if (m.room == room) out.push_back(m.nick);
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, size_t> RemoteRoster::room_sizes() const {
  std::map<std::string, size_t> out;
  for (const auto& [name, n] : nodes_)
    for (const auto& [id, m] : n.members)
      if (!m.room.empty()) ++out[m.room];
  return out;
}

std::string RemoteRoster::node_of(std::string_view lower_nick) const {
  auto it = by_nick_.find(std::string(lower_nick));
  return it == by_nick_.end() ? std::string() : it->second;
}

size_t RemoteRoster::member_count() const {
  size_t total = 0;
  for (const auto& [name, n] : nodes_) total += n.members.size();
  return total;
}

}  // namespace keel::chat
