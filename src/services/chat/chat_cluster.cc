// ChatService's cluster side: what other nodes' events do here, and nick claims.
#include "cluster/cluster_link.h"
#include "services/chat/chat_service.h"

namespace keel::chat {

using cluster::ClaimResult;
using cluster::EventKind;
using cluster::NodeEvent;

void ChatService::join_cluster(cluster::ClusterLink& link) {
  std::lock_guard lock(mutex_);
  cluster_ = &link;
}

std::optional<ClusterStatus> ChatService::cluster_status() const {
  std::lock_guard lock(mutex_);
  if (!cluster_) return std::nullopt;
  ClusterStatus s = cluster_->status();
  s.nodes = remote_.node_count() + 1;
  return s;
}

void ChatService::publish(int kind, std::vector<std::string> args) {
  if (cluster_) cluster_->publish(static_cast<EventKind>(kind), std::move(args));
}

void ChatService::claim_nick(Server& server, ConnectionId id, Member& m, std::string nick) {
  std::string key = lower_ascii(nick);
  m.claiming = key;
  nicks_[key] = id;  // reserved here: another local claim of it is refused at once
  reply(server, id, "* claiming " + nick + " in the cluster...");
  cluster_->claim(key, [this, id, nick, key](ClaimResult result, const std::string& holder) {
    Locked lock(*this);
    auto it = members_.find(id);
    if (it == members_.end() || it->second.closing || it->second.claiming != key) {
      // The member left meanwhile (its departure dropped the reservation). Let the name go,
      // unless another member here has taken it since.
      auto now = nicks_.find(key);
      if (result == ClaimResult::claimed && now == nicks_.end()) cluster_->release(key);
      return;
    }
    Member& m = it->second;
    m.claiming.clear();
    nicks_.erase(key);
    switch (result) {
      case ClaimResult::claimed: apply_nick(*server_, id, m, nick); break;
      case ClaimResult::taken:
        reply(*server_, id, "! nickname " + nick + " is taken (on node " + holder + ")");
        break;
      case ClaimResult::unavailable:
        reply(*server_, id,
              "! cannot take a nickname now: the cluster is unreachable; try again shortly");
        break;
    }
    release_held(id, m);
  });
}

void ChatService::release_held(ConnectionId id, Member& m) {
  while (!m.held.empty() && m.claiming.empty() && !m.closing) {
    std::string line = std::move(m.held.front());
    m.held.pop_front();
    handle_line(*server_, id, m, line);
  }
  if (m.closing) m.held.clear();
  if (m.claiming.empty() && !m.closing) queue(Outgoing::Kind::resume, *server_, id);
}

void ChatService::on_cluster_event(const NodeEvent& e) {
  Locked lock(*this);
  remote_.seen(e.node, std::chrono::steady_clock::now());
  const auto& a = e.args;
  // Another node's members are only told of through a Server; with no client here yet there
  // is nobody to tell, but the views are kept.
  auto tell_room = [&](const std::string& room, std::string_view text) {
    if (server_) to_room(*server_, room, sanitize(text));
  };
  switch (e.kind) {
    case EventKind::hello: return publish_roster();
    case EventKind::heartbeat: return;
    case EventKind::roster: return remote_.replace(e.node, a);
    case EventKind::joined:
      if (a.size() < 3) return;
      remote_.joined(e.node, a[0], a[1], a[2]);
      return tell_room(a[2], "* " + a[1] + " joined " + a[2]);
    case EventKind::left:
      if (a.size() < 4) return;
      remote_.left(e.node, a[0]);
      return tell_room(a[2],
                       "* " + a[1] + " left " + a[2] + (a[3].empty() ? "" : " (" + a[3] + ")"));
    case EventKind::renamed:
      if (a.size() < 4) return;
      remote_.renamed(e.node, a[0], a[1], a[2]);
      if (!a[3].empty() && !a[1].empty() && !a[2].empty())
        tell_room(a[2], "* " + a[3] + " is now known as " + a[1]);
      return;
    case EventKind::room_line:
      if (a.size() < 2) return;
      return tell_room(a[0], a[1]);
    case EventKind::private_line: {
      if (a.size() < 2 || server_ == nullptr) return;
      auto target = nicks_.find(a[0]);
      if (target == nicks_.end()) return;
      auto member = members_.find(target->second);
      if (member == members_.end() || member->second.closing ||
          lower_ascii(member->second.nick) != a[0])
        return;  // a reservation for a claim in progress, not the holder
      return reply(*server_, target->second, sanitize(a[1]));
    }
    case EventKind::gone: remote_.drop(e.node); return;
    case EventKind::op_request:  // the operator relay's (cli/serve.cc), never routed here
    case EventKind::op_reply:
    case EventKind::op_session: return;
  }
}

void ChatService::publish_roster() {
  std::vector<std::string> args;
  for (const auto& [id, m] : members_) {
    if (m.nick.empty() || m.closing) continue;
    args.push_back(std::to_string(id.value()));
    args.push_back(m.nick);
    args.push_back(m.room);
  }
  publish(static_cast<int>(EventKind::roster), std::move(args));
}

void ChatService::on_cluster_state(bool up) {
  std::lock_guard lock(mutex_);
  up_since_ = up ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
}

void ChatService::expire_nodes(std::chrono::milliseconds node_timeout) {
  Locked lock(*this);
  auto now = std::chrono::steady_clock::now();
  // Silence means something only while this node hears the cluster itself.
  if (up_since_ == std::chrono::steady_clock::time_point{} || now - up_since_ < node_timeout)
    return;
  remote_departures(remote_.expire(now - node_timeout), "node lost");
}

void ChatService::remote_departures(const std::vector<RemoteRoster::Departed>& gone,
                                    std::string_view why) {
  if (server_ == nullptr) return;
  for (const auto& d : gone)
    if (!d.member.room.empty())
      to_room(*server_, d.member.room,
              "* " + d.member.nick + " left " + d.member.room + " (" + std::string(why) + " " +
                  d.node + ")");
}

void ChatService::on_names_lost(const std::vector<std::string>& lower_nicks) {
  Locked lock(*this);
  if (server_ == nullptr) return;
  for (const std::string& key : lower_nicks) {
    auto holder = nicks_.find(key);
    if (holder == nicks_.end()) continue;
    ConnectionId id = holder->second;
    auto it = members_.find(id);
    if (it == members_.end() || lower_ascii(it->second.nick) != key) continue;
    Member& m = it->second;
    std::string old = m.nick;
    reply(*server_, id,
          "! your nickname " + old +
              " was taken on another node while the cluster was unreachable; choose another "
              "with /nick");
    leave(*server_, id, m, "lost its nickname");
    nicks_.erase(holder);
    m.nick.clear();
    publish(static_cast<int>(EventKind::renamed), {std::to_string(id.value()), "", "", old});
  }
}

}  // namespace keel::chat
