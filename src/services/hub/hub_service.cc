#include "services/hub/hub_service.h"

#include <stdexcept>

#include "cluster/cluster_link.h"

namespace keel::hub {

const char* to_string(HubFraming framing) noexcept {
  switch (framing) {
    case HubFraming::lines: return "lines";
    case HubFraming::length: return "length";
    case HubFraming::binary: return "binary";
  }
  return "lines";
}

HubFraming parse_framing(std::string_view text) {
  if (text == "lines") return HubFraming::lines;
  if (text == "length") return HubFraming::length;
  if (text == "binary") return HubFraming::binary;
  throw std::invalid_argument("hub framing: lines, length or binary");
}

std::string HubService::frame_message(std::string_view message) const {
  switch (options_.framing) {
    case HubFraming::lines: return chat::encode(chat::Framing::lines, message);
    case HubFraming::length: return chat::encode(chat::Framing::length, message);
    case HubFraming::binary: break;
  }
  return std::string(message);
}

std::string HubService::framed_notice(std::string_view text) const {
  return options_.framing == HubFraming::binary ? std::string() : frame_message(text);
}

void HubService::on_open(Server& server, const ConnectionInfo& info) {
  std::lock_guard lock(mutex_);
  server_ = &server;
  clients_.try_emplace(info.id);
  std::string greeting = framed_notice("* keel hub: you are waiting for an operator");
  if (!greeting.empty()) server.send(info.id, greeting);
}

void HubService::update_reading(ConnectionId id, Client& c) {
  const bool full = c.held.size() + c.in_flight >= options_.max_held_bytes;
  if (full == c.paused || !server_) return;
  c.paused = full;
  if (full)
    server_->pause_reading(id);
  else
    server_->resume_reading(id);
}

void HubService::on_data(Server&, ConnectionId id, Buffer& in) {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return in.consume_all();
  Client& c = it->second;
  // Everything delivered is taken (bytes left in `in` would wait for the next read, which may
  // never come); the bound is kept by pausing further reads.
  std::string_view bytes = in.view();
  if (attached(c) && c.session->post({"data", std::string(bytes), {}, bytes.size()}))
    c.in_flight += bytes.size();
  else
    c.held.append(bytes);
  in.consume_all();
  update_reading(id, c);
}

void HubService::on_peer_closed(Server& server, ConnectionId id) {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return (void)server.shutdown(id);
  Client& c = it->second;
  c.eof = true;
  if (attached(c)) c.session->post({"eof", {}, {}, 0});
  // The client has left: finished once what it sent has been taken; held bytes keep it until
  // an operator attaches.
  if (c.held.empty()) finish(id, c);
}

void HubService::finish(ConnectionId id, Client& c) {
  if (c.finishing || !server_) return;
  c.finishing = true;
  server_->shutdown(id);  // FIN after what is queued; the session ends when it closes
}

void HubService::on_close(Server&, ConnectionId id, const CloseReason& reason) {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  if (it->second.session) {
    std::string why = reason.clean()          ? "the client closed the connection"
                      : reason.detail.empty() ? reason.to_string()
                                              : reason.detail;
    it->second.session->end({"closed", {}, {{"reason", why}}, 0});
  }
  clients_.erase(it);
}

std::optional<Attachable::Attached> HubService::attach(ConnectionId id,
                                                       std::shared_ptr<OperatorStream> stream,
                                                       std::string* refusal) {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(id);
  if (it == clients_.end()) {
    *refusal = "no such client " + std::to_string(id.value());
    return std::nullopt;
  }
  Client& c = it->second;
  if (attached(c)) {
    *refusal = "client " + std::to_string(id.value()) + " is attached by " + c.session->holder();
    return std::nullopt;
  }
  const OperatorStream* raw = stream.get();
  stream->on_written([this, id, raw](size_t credit) { written(id, raw, credit); });
  stream->on_operator_left([this, id, raw] { detach(id, raw); });
  c.session = std::move(stream);
  std::string held = std::move(c.held);
  c.held.clear();
  c.held.shrink_to_fit();
  c.in_flight = held.size();
  Attached result{held.size()};
  if (!held.empty()) c.session->post({"data", std::move(held), {}, result.held_bytes});
  if (c.eof) {
    c.session->post({"eof", {}, {}, 0});
    finish(id, c);
  }
  update_reading(id, c);
  return result;
}

void HubService::written(ConnectionId id, const OperatorStream* stream, size_t credit) {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(id);
  if (it == clients_.end() || it->second.session.get() != stream) return;
  Client& c = it->second;
  c.in_flight -= std::min(credit, c.in_flight);
  update_reading(id, c);
}

void HubService::detach(ConnectionId id, const OperatorStream* stream) {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(id);
  if (it == clients_.end() || it->second.session.get() != stream) return;
  Client& c = it->second;
  c.session.reset();
  c.in_flight = 0;  // on their way to the operator who had them
  update_reading(id, c);
  if (c.eof && c.held.empty()) finish(id, c);
}

size_t HubService::held_bytes(ConnectionId id) const {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(id);
  return it == clients_.end() ? 0 : it->second.held.size();
}

void HubService::describe(ConnectionId id, Fields& fields) const {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  fields.emplace_back("held", std::to_string(it->second.held.size()));
  if (attached(it->second)) fields.emplace_back("attached", it->second.session->holder());
}

std::string HubService::operator_line(std::string_view text) const {
  // keel ctl send / broadcast: one line of text; binary clients get it with a newline.
  return options_.framing == HubFraming::binary ? std::string(text) + "\n" : frame_message(text);
}

std::string HubService::kick_line(std::string_view reason) const {
  std::string text = "* disconnected by the operator";
  if (!reason.empty()) text += ": " + chat::sanitize(reason);
  return framed_notice(text);
}

std::string HubService::overflow_line(size_t queued_bytes) const {
  return framed_notice("* disconnected: too slow, " + std::to_string(queued_bytes) +
                       " bytes were waiting for you to read");
}

std::string HubService::drain_line() const {
  return framed_notice("* server going down");
}

std::string HubService::refusal_line(Refusal reason) const {
  return framed_notice(reason == Refusal::per_address
                           ? "* keel: too many connections from your address"
                           : "* keel: server full, try again later");
}

std::optional<ClusterStatus> HubService::cluster_status() const {
  if (!cluster_) return std::nullopt;
  return cluster_->status();
}

}  // namespace keel::hub
