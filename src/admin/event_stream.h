// EventStream: the admin endpoint's side of an OperatorStream (keel/operator_stream.h). An admin
// connection in stream mode (attach, watch) owns one: producers post events from their threads,
// each becomes one JSON event line written to the operator on the admin loop, in order, and the
// credit of each written line goes back to its producer. Event lines: docs/protocols.md, "Admin
// protocol", "Sessions".
// Thread safety: the OperatorStream methods from any thread; the rest on the admin loop.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "keel/net/tcp_connection.h"
#include "keel/operator_stream.h"

namespace keel::admin {

class EventStream final : public OperatorStream, public std::enable_shared_from_this<EventStream> {
 public:
  // Admin loop: a stream whose events are written to c (the admin connection).
  EventStream(TcpConnection& c, std::string holder);

  bool post(OperatorEvent ev) override;
  void end(OperatorEvent last) override;
  bool open() const noexcept override { return open_.load(std::memory_order_acquire); }
  const std::string& holder() const noexcept override { return holder_; }
  void on_written(WrittenFn fn) override { written_ = std::move(fn); }
  void on_operator_left(LeftFn fn) override { left_ = std::move(fn); }

  // Admin loop. Called after the producer's last event has been written (end()): the admin
  // connection leaves stream mode.
  void on_ended(std::function<void()> fn) { ended_ = std::move(fn); }
  // Admin loop. The operator ends the session (detach): the producer is told (on_operator_left);
  // events it posted before are still written, ahead of anything posted to the loop after this.
  void leave();
  // Admin loop. The admin connection is closing: nothing more is written; the producer is told.
  void connection_closed();
  // Admin loop. The admin connection's output has drained: credit goes back to the producer.
  void output_drained();

  // {"event":TYPE[,"data":BASE64,"bytes":N][,FIELD:VALUE...]} and "\n".
  static std::string event_line(const OperatorEvent& ev);

 private:
  void deliver(const OperatorEvent& ev);

  EventLoop& loop_;
  const ConnectionId conn_;   // the admin connection (looked up on each write: it may be gone)
  bool conn_closed_ = false;  // admin loop only
  const std::string holder_;
  std::atomic<bool> open_{true};
  size_t pending_credit_ = 0;  // written to the socket buffer's queue, not yet to the socket
  WrittenFn written_;
  LeftFn left_;
  std::function<void()> ended_;
};

// Who is on the other end of admin connection c, as a holder() text: the operator name the
// request gave (if any), the uid and pid of a Unix-socket peer or a TCP peer's address, and
// since when: "alice (uid 1000, pid 4242) since 2026-11-28T20:31:07Z".
std::string describe_operator(const TcpConnection& c, std::string_view name);

}  // namespace keel::admin
