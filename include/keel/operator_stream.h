// OperatorStream: an operator's live session with one connection (`keel ctl attach`, `watch`) as
// the producer of its events sees it: an ordered, flow-controlled, one-way channel of events to
// the operator. The admin endpoint implements it (src/admin/event_stream.h); a producer (the hub
// service for attach, an engine's tap for watch) posts events from its own threads.
//
// Order: events reach the operator in the order of the post() calls (a producer that posts from
// several threads orders them itself, e.g. under its own mutex).
// Flow control: an event may carry `credit` (bytes, as the producer counts them). Once the
// event's line has been written to the operator's socket, the stream hands that credit back on
// the admin loop through the callback given to on_written(). A producer keeps what it has out
// under a window and pauses its source past it (Server::pause_reading), so an operator that does
// not read never grows keel's memory.
// End: either side may end a session. The producer calls end(last) (the client left); the
// operator detaches or goes away, and the stream calls the producer's on_operator_left callback
// (on the admin loop), after which post() returns false.
// Thread safety: post(), end(), open() and holder() from any thread; on_written() and
// on_operator_left() before the first post(), from the admin loop (where the session starts).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace keel {

struct OperatorEvent {
  std::string type;   // "data", "eof", "closed", ... (the event line's "event" field)
  std::string bytes;  // exact payload, any bytes (sent base64-encoded as "data", with "bytes")
  std::vector<std::pair<std::string, std::string>> fields;  // more string fields ("reason")
  size_t credit = 0;  // handed back through on_written() once the line is written
};

class OperatorStream {
 public:
  using WrittenFn = std::function<void(size_t credit)>;
  using LeftFn = std::function<void()>;

  virtual ~OperatorStream() = default;

  // Queues ev after every event posted before it. False (ev dropped) once the session has
  // ended: the producer then keeps what it has (the hub holds it again).
  virtual bool post(OperatorEvent ev) = 0;
  // Ends the session from the producer's side: last is the final event (e.g. "closed" with the
  // reason). Later posts return false; on_operator_left is not called.
  virtual void end(OperatorEvent last) = 0;
  // True until either side has ended the session.
  virtual bool open() const noexcept = 0;
  // Who holds the session, for refusals and `keel ctl list`:
  // "alice (uid 1000, pid 4242) since 2026-11-28T20:31:07Z".
  virtual const std::string& holder() const noexcept = 0;

  virtual void on_written(WrittenFn fn) = 0;
  virtual void on_operator_left(LeftFn fn) = 0;
};

}  // namespace keel
