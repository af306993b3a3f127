#include "admin/event_stream.h"

#include <sys/socket.h>

#include "admin/admin_context.h"
#include "admin/base64.h"

namespace keel::admin {

EventStream::EventStream(TcpConnection& c, std::string holder)
    : loop_(c.loop()), conn_(c.id()), holder_(std::move(holder)) {}

bool EventStream::post(OperatorEvent ev) {
  if (!open()) return false;
  loop_.post([self = shared_from_this(), ev = std::move(ev)] { self->deliver(ev); });
  return true;
}

void EventStream::end(OperatorEvent last) {
  if (!open_.exchange(false, std::memory_order_acq_rel)) return;  // the operator left first
  loop_.post([self = shared_from_this(), last = std::move(last)] {
    self->deliver(last);
    if (self->ended_) self->ended_();
  });
}

void EventStream::leave() {
  if (!open_.exchange(false, std::memory_order_acq_rel)) return;
  if (left_) left_();
}

void EventStream::connection_closed() {
  conn_closed_ = true;
  leave();
}

void EventStream::output_drained() {
  if (pending_credit_ == 0) return;
  size_t credit = pending_credit_;
  pending_credit_ = 0;
  if (written_) written_(credit);
}

void EventStream::deliver(const OperatorEvent& ev) {
  TcpConnection* c = conn_closed_ ? nullptr : loop_.find(conn_);
  if (!c) return;
  c->send(event_line(ev));
  if (ev.credit == 0) return;
  if (c->queued_output_bytes() == 0) {  // written at once: no drain callback will come
    if (written_) written_(ev.credit);
  } else {
    pending_credit_ += ev.credit;
  }
}

std::string EventStream::event_line(const OperatorEvent& ev) {
  Json line{{"event", ev.type}};
  if (!ev.bytes.empty() || ev.type == "data") {
    line["data"] = base64_encode(ev.bytes);
    line["bytes"] = ev.bytes.size();
  }
  for (const auto& [key, value] : ev.fields)
    if (!line.contains(key)) line[key] = value;
  return to_line(line);
}

std::string describe_operator(const TcpConnection& c, std::string_view name) {
  std::string who(name.empty() ? "an operator" : name);
  ucred cred{};
  socklen_t len = sizeof cred;
  // A Unix socket's peer has credentials (pid > 0); a TCP peer has an address.
  if (::getsockopt(c.fd(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
    who += " (uid " + std::to_string(cred.uid) + ", pid " + std::to_string(cred.pid) + ")";
  } else {
    who += " (" + c.peer().to_string() + ")";
  }
  return who + " since " + utc_timestamp(std::chrono::system_clock::now());
}

}  // namespace keel::admin
