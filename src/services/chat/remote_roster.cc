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

void RemoteRoster::replace(const std::string& node, const std::vector<std::string>& args) {
  Node& n = nodes_[node];
  n.members.clear();
  for (size_t i = 0; i + 2 < args.size(); i += 3)
    if (!args[i + 1].empty()) n.members[args[i]] = Member{args[i + 1], args[i + 2]};
}

void RemoteRoster::joined(const std::string& node, const std::string& id, const std::string& nick,
                          const std::string& room) {
  nodes_[node].members[id] = Member{nick, room};
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
  Node& n = nodes_[node];
  if (nick.empty()) {
    n.members.erase(id);  // gone from the node (disconnected, or lost its nick)
    return;
  }
  n.members[id] = Member{nick, room};
}

std::vector<RemoteRoster::Departed> RemoteRoster::drop(const std::string& node) {
  std::vector<Departed> out;
  auto n = nodes_.find(node);
  if (n == nodes_.end()) return out;
  for (auto& [id, m] : n->second.members) out.push_back({node, std::move(m)});
  nodes_.erase(n);
  return out;
}

std::vector<RemoteRoster::Departed> RemoteRoster::expire(Clock::time_point before) {
  std::vector<Departed> out;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (it->second.last_seen < before) {
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
  for (const auto& [name, n] : nodes_)
    for (const auto& [id, m] : n.members)
      if (lower_ascii(m.nick) == lower_nick) return name;
  return {};
}

size_t RemoteRoster::member_count() const {
  size_t total = 0;
  for (const auto& [name, n] : nodes_) total += n.members.size();
  return total;
}

}  // namespace keel::chat
