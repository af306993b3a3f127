#include "services/chat/chat_service.h"

#include <algorithm>

#include "cluster/cluster_link.h"

namespace keel::chat {
using cluster::EventKind;
namespace {

std::string lower(std::string_view s) {
  return lower_ascii(s);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr std::string_view kHelp =
    "* commands: /nick NAME, /join ROOM, /leave, /rooms, /who, /msg NICK TEXT, /me TEXT, /quit "
    "[REASON]; other lines go to your room";

}  // namespace

bool ChatService::valid_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

void ChatService::reply(Server& server, ConnectionId id, std::string_view text) {
  outbox_.push_back({Outgoing::Kind::send, &server, id, nullptr, encode(options_.framing, text)});
}

void ChatService::to_room(Server& server, const std::string& room, std::string_view text) {
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  outbox_.push_back(
      {Outgoing::Kind::send_room, &server, {}, it->second, encode(options_.framing, text)});
}

void ChatService::deliver(std::vector<Outgoing>& out) {
  for (Outgoing& o : out) {
    switch (o.kind) {
      case Outgoing::Kind::send:
        if (o.server->send(o.id, o.bytes)) lines_out_.fetch_add(1, std::memory_order_relaxed);
        break;
      case Outgoing::Kind::send_room:
        lines_out_.fetch_add(o.server->send_many(*o.members, o.bytes), std::memory_order_relaxed);
        break;
      case Outgoing::Kind::shutdown: o.server->shutdown(o.id); break;
      case Outgoing::Kind::pause: o.server->pause_reading(o.id); break;
      case Outgoing::Kind::resume: o.server->resume_reading(o.id); break;
    }
  }
}

void ChatService::on_open(Server& server, const ConnectionInfo& info) {
  Locked lock(*this);
  if (server_ == nullptr) server_ = &server;
  members_.emplace(info.id, Member(InputBudget(options_.input_rate, InputBudget::Clock::now())));
  reply(server, info.id, "* welcome to keel chat: /nick NAME, then /join ROOM (/help for more)");
}

void ChatService::on_data(Server& server, ConnectionId id, Buffer& in) {
  Locked lock(*this);
  auto it = members_.find(id);
  if (it == members_.end() || it->second.closing) {
    in.consume_all();
    return;
  }
  Member& m = it->second;
  const size_t unread = in.readable_bytes();
  std::string line;
  for (;;) {
    DecodeStatus status = decode(options_.framing, in, options_.max_line_bytes, line);
    if (status == DecodeStatus::need_more) break;
    if (status == DecodeStatus::too_long) {
      in.consume_all();
      close_with_error(server, id, m,
                       "! error: line too long (max " + std::to_string(options_.max_line_bytes) +
                           " bytes); closing");
      return;
    }
    if (!m.claiming.empty()) {  // a /nick waits for the cluster: keep the order
      m.held.push_back(std::move(line));
      continue;
    }
    handle_line(server, id, m, line);
    if (m.closing) {
      in.consume_all();
      return;
    }
    if (!m.claiming.empty()) queue(Outgoing::Kind::pause, server, id);
  }
  // Every whole message read is handled at once (never held back, so never lost); the budget
  // then pays for it by pausing further reads. A pending partial message is charged when whole.
  if (m.budget.enabled())
    m.budget.charge(server, id, unread - in.readable_bytes(), InputBudget::Clock::now(),
                    [&] { return budget_wake(server, id); });
}

Server::TimerTask ChatService::budget_wake(Server& server, ConnectionId id) {
  // Timers run only while id is live, so the engine (server) is still there.
  return [this, &server, id] {
    Locked lock(*this);
    auto it = members_.find(id);
    if (it == members_.end() || it->second.closing) return;  // a closing client reads anyway
    it->second.budget.on_wake(server, id, InputBudget::Clock::now(), budget_wake(server, id));
  };
}

void ChatService::close_with_error(Server& server, ConnectionId id, Member& m,
                                   std::string_view text) {
  reply(server, id, text);
  depart(server, id, m, "disconnected");
  finish(server, id);  // FIN once the error line is out; the peer closing ends it
}

void ChatService::depart(Server& server, ConnectionId id, Member& m, std::string_view why) {
  m.closing = true;  // first: the leave notice is for those who stay
  leave(server, id, m, why);
  if (!m.claiming.empty()) {
    nicks_.erase(m.claiming);  // the claim's answer finds the member gone and releases it
    m.claiming.clear();
  }
  if (!m.nick.empty()) {
    nicks_.erase(lower(m.nick));  // free for others at once
    if (cluster_) {
      cluster_->release(lower(m.nick));
      publish(static_cast<int>(EventKind::renamed), {std::to_string(id.value()), m.nick, "", ""});
    }
  }
}

void ChatService::handle_line(Server& server, ConnectionId id, Member& m, std::string_view line) {
  if (trim(line).empty()) return;
  ++lines_in_;
  if (line.front() == '/') {
    std::string_view rest = line.substr(1);
    size_t space = rest.find(' ');
    std::string_view cmd = rest.substr(0, space);
    std::string_view arg =
        space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    command(server, id, m, cmd, arg);
    return;
  }
  if (m.nick.empty()) return reply(server, id, "! choose a nickname first: /nick NAME");
  if (m.room.empty()) return reply(server, id, "! join a room first: /join ROOM");
  std::string text = "<" + m.nick + "> " + sanitize(line);
  to_room(server, m.room, text);
  publish(static_cast<int>(EventKind::room_line), {m.room, std::move(text)});
}

void ChatService::command(Server& server, ConnectionId id, Member& m, std::string_view cmd,
                          std::string_view arg) {
  if (cmd == "nick") return set_nick(server, id, m, trim(arg));
  if (cmd == "help") return reply(server, id, kHelp);
  if (cmd == "rooms") {
    std::map<std::string, size_t> sizes = remote_.room_sizes();
    for (const auto& [name, members] : rooms_) sizes[name] += members->size();
    if (sizes.empty()) return reply(server, id, "* no rooms yet");
    std::string s = "* rooms:";
    for (const auto& [name, size] : sizes) s += " " + name + " (" + std::to_string(size) + ")";
    return reply(server, id, s);
  }
  if (cmd == "quit") {
    std::string why = "quit";
    if (!trim(arg).empty()) why += ": " + sanitize(trim(arg));
    reply(server, id, "* bye");
    depart(server, id, m, why);
    finish(server, id);
    return;
  }
  if (m.nick.empty()) return reply(server, id, "! choose a nickname first: /nick NAME");
  if (cmd == "join") return join(server, id, m, trim(arg));
  if (cmd == "msg") return private_message(server, id, m, arg);
  if (cmd == "leave") {
    if (m.room.empty()) return reply(server, id, "! you are not in a room");
    return leave(server, id, m, "");
  }
  if (cmd == "who") {
    if (m.room.empty()) return reply(server, id, "! you are not in a room");
    std::string s = "* in " + m.room + ":";
    const char* sep = " ";
    auto room = rooms_.find(m.room);  // always there: a member's room holds it
    RoomSnapshot members = room == rooms_.end() ? std::make_shared<Room>() : room->second;
    for (ConnectionId member : *members) {
      auto other = members_.find(member);  // always there: a room holds members only
      if (other == members_.end()) continue;
      s += sep + other->second.nick;
      sep = ", ";
    }
    for (const std::string& nick : remote_.nicks_in(m.room)) {  // on other nodes
      s += sep + nick;
      sep = ", ";
    }
    return reply(server, id, s);
  }
  if (cmd == "me") {
    if (m.room.empty()) return reply(server, id, "! join a room first: /join ROOM");
    std::string text = "* " + m.nick + " " + sanitize(trim(arg));
    to_room(server, m.room, text);
    return publish(static_cast<int>(EventKind::room_line), {m.room, std::move(text)});
  }
  reply(server, id, "! unknown command /" + sanitize(cmd.substr(0, 32)) + " (try /help)");
}

void ChatService::set_nick(Server& server, ConnectionId id, Member& m, std::string_view nick) {
  if (!valid_name(nick))
    return reply(server, id, "! invalid nickname: use 1-32 letters, digits, '_', '-' or '.'");
  if (!m.claiming.empty()) return reply(server, id, "! a nickname change is in progress");
  std::string key = lower(nick);
  auto taken = nicks_.find(key);
  if (taken != nicks_.end()) {
    if (taken->second == id && m.nick == nick)
      return reply(server, id, "* you are already " + m.nick);
    if (taken->second != id)
      return reply(server, id, "! nickname " + std::string(nick) + " is taken");
  }
  if (cluster_ && key != lower(m.nick)) return claim_nick(server, id, m, std::string(nick));
  apply_nick(server, id, m, std::string(nick));
}

void ChatService::apply_nick(Server& server, ConnectionId id, Member& m, const std::string& nick) {
  std::string old = m.nick;
  if (!old.empty()) nicks_.erase(lower(old));
  nicks_[lower(nick)] = id;
  m.nick = nick;
  reply(server, id, "* you are now " + m.nick);
  if (!old.empty() && !m.room.empty())
    to_room(server, m.room, "* " + old + " is now known as " + m.nick);
  if (cluster_) {
    if (!old.empty() && lower(old) != lower(nick)) cluster_->release(lower(old));
    publish(static_cast<int>(EventKind::renamed),
            {std::to_string(id.value()), m.nick, m.room, old});
  }
}

void ChatService::join(Server& server, ConnectionId id, Member& m, std::string_view room) {
  if (room.starts_with('#')) room.remove_prefix(1);
  if (!valid_name(room))
    return reply(server, id, "! invalid room name: use 1-32 letters, digits, '_', '-' or '.'");
  std::string name = "#" + std::string(room);
  if (m.room == name) return reply(server, id, "! you are already in " + name);
  if (!m.room.empty()) leave(server, id, m, "");
  RoomSnapshot& members = rooms_[name];
  auto next = members ? std::make_shared<Room>(*members) : std::make_shared<Room>();
  next->push_back(id);
  members = std::move(next);
  m.room = name;
  to_room(server, name, "* " + m.nick + " joined " + name);
  publish(static_cast<int>(EventKind::joined), {std::to_string(id.value()), m.nick, name});
}

void ChatService::leave(Server& server, ConnectionId id, Member& m, std::string_view why) {
  if (m.room.empty()) return;
  std::string notice = "* " + m.nick + " left " + m.room;
  if (!why.empty()) notice += " (" + std::string(why) + ")";
  std::string room = std::move(m.room);
  m.room.clear();
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  auto rest = std::make_shared<Room>(*it->second);
  std::erase(*rest, id);
  it->second = std::move(rest);
  publish(static_cast<int>(EventKind::left),
          {std::to_string(id.value()), m.nick, room, std::string(why)});
  if (!m.closing) reply(server, id, notice);  // a /leave is confirmed; a departure is not
  if (it->second->empty())
    rooms_.erase(it);
  else
    to_room(server, room, notice);
}

void ChatService::private_message(Server& server, ConnectionId id, Member& m,
                                  std::string_view arg) {
  arg = trim(arg);
  size_t space = arg.find(' ');
  std::string_view nick = arg.substr(0, space);
  std::string_view text =
      space == std::string_view::npos ? std::string_view() : trim(arg.substr(space + 1));
  if (nick.empty() || text.empty()) return reply(server, id, "! usage: /msg NICK TEXT");
  auto target = nicks_.find(lower(nick));
  if (target == nicks_.end()) {
    if (!cluster_ || remote_.node_of(lower(nick)).empty())
      return reply(server, id, "! no such nick " + sanitize(nick));
    publish(static_cast<int>(EventKind::private_line),
            {lower(nick), "<" + m.nick + "> (private) " + sanitize(text), m.nick});
    return reply(server, id, "* (private to " + std::string(nick) + ") " + sanitize(text));
  }
  reply(server, target->second, "<" + m.nick + "> (private) " + sanitize(text));
  if (target->second != id)
    reply(server, id, "* (private to " + std::string(nick) + ") " + sanitize(text));
}

void ChatService::on_peer_closed(Server& server, ConnectionId id) {
  {
    Locked lock(*this);  // the departure's notices go out before our FIN
    auto it = members_.find(id);
    if (it != members_.end()) depart(server, id, it->second, "disconnected");
  }
  server.shutdown(id);
}

void ChatService::on_close(Server& server, ConnectionId id, const CloseReason& reason) {
  Locked lock(*this);
  auto it = members_.find(id);
  if (it == members_.end()) return;
  Member& m = it->second;
  std::string why = reason.clean()          ? "disconnected"
                    : reason.detail.empty() ? reason.to_string()
                                            : reason.detail;
  if (!m.closing) depart(server, id, m, why);
  members_.erase(it);
}

std::string ChatService::drain_line() const {
  return encode(options_.framing, "* server going down");
}

std::string ChatService::overflow_line(size_t queued_bytes) const {
  return encode(options_.framing, "! disconnected: too slow, " + std::to_string(queued_bytes) +
                                      " bytes were waiting for you to read");
}

std::string ChatService::refusal_line(Refusal reason) const {
  return encode(options_.framing, reason == Refusal::per_address
                                      ? "! keel: too many connections from your address"
                                      : "! keel: server full, try again later");
}

void ChatService::describe(ConnectionId id, Fields& fields) const {
  std::lock_guard lock(mutex_);
  auto it = members_.find(id);
  if (it == members_.end()) return;
  if (!it->second.nick.empty()) fields.emplace_back("nick", it->second.nick);
  if (!it->second.room.empty()) fields.emplace_back("room", it->second.room);
  if (uint64_t n = it->second.budget.pauses()) fields.emplace_back("throttled", std::to_string(n));
}

std::string ChatService::operator_line(std::string_view text) const {
  return encode(options_.framing, "* [operator] " + sanitize(text));
}

std::string ChatService::kick_line(std::string_view reason) const {
  std::string text = "* you were kicked by the operator";
  if (!reason.empty()) text += ": " + sanitize(reason);
  return encode(options_.framing, text);
}

std::optional<std::vector<ConnectionId>> ChatService::room_members(std::string_view room) const {
  std::string name = room.starts_with('#') ? std::string(room) : "#" + std::string(room);
  std::lock_guard lock(mutex_);
  auto it = rooms_.find(name);
  return it == rooms_.end() ? std::vector<ConnectionId>{} : *it->second;
}

std::optional<MessageCounts> ChatService::message_counts() const {
  std::lock_guard lock(mutex_);
  return MessageCounts{lines_in_, lines_out_.load(std::memory_order_relaxed)};
}

}  // namespace keel::chat
