// HttpAttachStream: the HTTP side of an OperatorStream (keel/operator_stream.h) for attach from
// the dashboard. The hub posts events from its loops; each is written, in order, on the HTTP
// loop as one Server-Sent Event whose data is the admin protocol's event line (data as base64).
// Events posted before the browser's stream connects wait (their credit stays out, so the hub's
// window bounds them); credit goes back once an event is written and the stream's output is
// small, so a browser that does not read pauses the client instead of growing keel's memory.
// Thread safety: post(), end(), open() and holder() from any thread; the rest on the HTTP loop.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "keel/net/connection_id.h"
#include "keel/net/event_loop.h"
#include "keel/operator_stream.h"

namespace keel {
class Server;
class Attachable;
class Engine;
}  // namespace keel

namespace keel::http {

class HttpAttachStream final : public OperatorStream,
                               public std::enable_shared_from_this<HttpAttachStream> {
 public:
  static constexpr size_t kMaxQueuedBytes = 64 * 1024;  // stream output before credit waits

  // HTTP loop. finished runs on the HTTP loop once the session is over (either side ended it).
  HttpAttachStream(EventLoop& loop, std::string session, std::string holder, Engine& engine,
                   ConnectionId client, std::function<void()> finished);

  bool post(OperatorEvent ev) override;
  void end(OperatorEvent last) override;
  bool open() const noexcept override { return open_.load(std::memory_order_acquire); }
  const std::string& holder() const noexcept override { return holder_; }
  void on_written(WrittenFn fn) override { written_ = std::move(fn); }
  void on_operator_left(LeftFn fn) override { left_ = std::move(fn); }

  // HTTP loop: the browser's event stream is connection id of server; the backlog goes out.
  bool connected() const noexcept { return server_ != nullptr; }
  void connect(Server& server, ConnectionId id);
  ConnectionId stream_id() const noexcept { return stream_; }
  // HTTP loop: the operator detaches: the hub parks the client, the stream gets "detached".
  void leave(const std::string& why);
  // HTTP loop: the browser's stream closed (tab closed, network): as leave, nothing written.
  void stream_gone();
  Engine& engine() const noexcept { return engine_; }
  ConnectionId client() const noexcept { return client_; }

 private:
  void deliver(const OperatorEvent& ev);
  void write(const std::string& type, const std::string& data);
  void check_credit();
  void finish();

  EventLoop& loop_;
  const std::string session_;
  const std::string holder_;
  Engine& engine_;
  const ConnectionId client_;
  std::function<void()> finished_;
  std::atomic<bool> open_{true};
  // HTTP loop only:
  Server* server_ = nullptr;
  ConnectionId stream_;
  bool stream_closed_ = false;
  bool finished_called_ = false;
  std::deque<OperatorEvent> backlog_;  // posted before the stream connected
  size_t pending_credit_ = 0;          // written, waiting for the stream's output to shrink
  bool credit_timer_ = false;
  WrittenFn written_;
  LeftFn left_;
};

}  // namespace keel::http
