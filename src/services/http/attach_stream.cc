#include "services/http/attach_stream.h"

#include "admin/event_stream.h"
#include "keel/net/tcp_connection.h"
#include "keel/service.h"
#include "services/http/api.h"

namespace keel::http {
namespace {

constexpr std::chrono::milliseconds kCreditRetry{20};

}  // namespace

HttpAttachStream::HttpAttachStream(EventLoop& loop, std::string session, std::string holder,
                                   Engine& engine, ConnectionId client,
                                   std::function<void()> finished)
    : loop_(loop),
      session_(std::move(session)),
      holder_(std::move(holder)),
      engine_(engine),
      client_(client),
      finished_(std::move(finished)) {}

bool HttpAttachStream::post(OperatorEvent ev) {
  if (!open()) return false;
  loop_.post([self = shared_from_this(), ev = std::move(ev)] { self->deliver(ev); });
  return true;
}

void HttpAttachStream::end(OperatorEvent last) {
  if (!open_.exchange(false, std::memory_order_acq_rel)) return;  // the operator left first
  loop_.post([self = shared_from_this(), last = std::move(last)] {
    self->deliver(last);
    self->finish();
  });
}

void HttpAttachStream::leave(const std::string& why) {
  if (!open_.exchange(false, std::memory_order_acq_rel)) return;
  if (left_) left_();  // the hub parks the client; it posts nothing more
  // After the events posted before: a task posted now runs after those.
  loop_.post([self = shared_from_this(), why] {
    self->write("detached", Json{{"event", "detached"}, {"reason", why}}.dump());
    self->finish();
  });
}

void HttpAttachStream::stream_gone() {
  stream_closed_ = true;
  leave("the dashboard's event stream closed");
}

void HttpAttachStream::connect(Server& server, ConnectionId id) {
  server_ = &server;
  stream_ = id;
  std::deque<OperatorEvent> backlog;
  backlog.swap(backlog_);
  for (const OperatorEvent& ev : backlog) deliver(ev);
}

void HttpAttachStream::deliver(const OperatorEvent& ev) {
  if (!server_) {
    backlog_.push_back(ev);  // bounded: its credit is still out, so the hub's window holds
    return;
  }
  std::string line = admin::EventStream::event_line(ev);
  if (!line.empty() && line.back() == '\n') line.pop_back();
  write(ev.type, line);
  pending_credit_ += ev.credit;
  check_credit();
}

void HttpAttachStream::write(const std::string& type, const std::string& data) {
  if (!server_ || stream_closed_) return;
  server_->send(stream_, "event: " + type + "\ndata: " + data + "\n\n");
}

void HttpAttachStream::check_credit() {
  if (pending_credit_ == 0 || stream_closed_) return;
  TcpConnection* c = loop_.find(stream_);
  if (!c) return;
  if (c->queued_output_bytes() < kMaxQueuedBytes) {
    size_t credit = pending_credit_;
    pending_credit_ = 0;
    if (written_) written_(credit);
    return;
  }
  if (credit_timer_) return;
  credit_timer_ = true;
  loop_.run_after(kCreditRetry, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->credit_timer_ = false;
      self->check_credit();
    }
  });
}

void HttpAttachStream::finish() {
  if (finished_called_) return;
  finished_called_ = true;
  if (server_ && !stream_closed_) server_->shutdown(stream_);  // FIN once the events are out
  if (finished_) finished_();
}

}  // namespace keel::http
