// OperatorRelay: an operator's request (keel ctl, admin protocol JSON) run on other nodes of
// the cluster, through the backplane's events: op_request to a node (or every node), each runs
// it with the executor it was given (the admin endpoint's own command runner) and answers with
// op_reply. The asker gets every reply once all the nodes it expected answered, or at the
// timeout with the names of those that did not.
//
// Sessions (hub attach to a client on another node) ride on the same events. The operator's
// node starts one with attach(): an op_request that also carries a session id and the
// operator's name. The client's node makes a RemoteStream (an OperatorStream whose events go
// back as op_session "event"/"end") and gives it to its attach executor. Each written event's
// credit comes back as op_session "credit", so flow control spans the nodes as it does on one;
// the operator leaving is op_session "left". `say` is an op_request to the session. A session
// whose other node falls silent (5 s without an event) ends on both sides.
// Thread safety: ask() and attach() from any thread; done, the executors and the streams'
// callbacks run on the backplane thread, except as OperatorStream says.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cluster/backplane.h"
#include "keel/operator_stream.h"

namespace keel::cluster {

class OperatorRelay {
 public:
  // Runs a request (JSON text) on this node; the reply as JSON text.
  using Executor = std::function<std::string(const std::string& request)>;
  // A session's request on this node, the client's: "attach" starts it with stream (the reply
  // as JSON text; the session is dropped unless it says "ok":true), and the executor returns
  // what runs the session's later requests ("say"), in `next`.
  using SessionExecutor = std::function<std::string(
      const std::string& request, std::shared_ptr<OperatorStream> stream, Executor* next)>;
  struct Answers {
    std::vector<std::pair<std::string, std::string>> replies;  // node, reply JSON
    std::vector<std::string> missing;                          // expected, not answered
  };
  using Done = std::function<void(Answers)>;

  // Routes the backplane's operator events here (before the backplane starts).
  OperatorRelay(Backplane& backplane, Executor executor, SessionExecutor sessions = {});
  ~OperatorRelay();

  // target: a node's name, or empty for every other live node. With no node to ask (or the
  // link down), done gets at once what it can: nothing, and the target as missing.
  void ask(const std::string& target, const std::string& request, std::chrono::milliseconds timeout,
           Done done);

  // The operator's node: starts a session with a client of node target. stream is the
  // operator's side (its callbacks are set here: call from where the stream expects that);
  // the client's events are posted to it once done has had the reply (answered, or target in
  // missing). holder names the operator to the client's node.
  void attach(const std::string& target, const std::string& request, const std::string& holder,
              std::shared_ptr<OperatorStream> stream, std::chrono::milliseconds timeout, Done done);
  // A request (say) for the session that stream started with attach().
  void session_request(const OperatorStream* stream, const std::string& request,
                       std::chrono::milliseconds timeout, Done done);

  // done once node target has read every event this node published before this call (its
  // answer comes after them: the backplane's stream is in order). An operator's detach waits
  // for it, so that the client's node has parked the client before "detached" is told.
  void sync(const std::string& target, std::chrono::milliseconds timeout, Done done);

  // Sessions open on this node, either side (for tests and stats).
  size_t sessions() const;

 private:
  class RemoteStream;
  struct Pending {
    std::vector<std::string> expected;
    Answers answers;
    Done done;
    TimerId timer = 0;
    uint64_t session = 0;  // an attach: the operator's session it answers
  };
  // The operator's side of a session.
  struct Operator {
    std::string node;  // the client's
    std::shared_ptr<OperatorStream> stream;
    bool answered = false;               // the attach reply went to done
    std::vector<OperatorEvent> waiting;  // events that came before it
    std::optional<OperatorEvent> last;   // the session ended before it
  };
  void send(const std::string& target, const std::string& request, uint64_t session,
            std::vector<std::string> extra, std::chrono::milliseconds timeout, Done done);
  void on_event(const NodeEvent& e);
  void on_request(const NodeEvent& e);
  void on_session(const NodeEvent& e);
  void finish(uint64_t id);
  // A session started, on either side: counted, and checked every second from now on.
  void session_opened();
  void check_sessions();
  void end_operator(uint64_t session, OperatorEvent last);

  Backplane& backplane_;
  Executor executor_;
  SessionExecutor session_executor_;
  // Loop thread only.
  uint64_t next_id_ = 1;
  std::map<uint64_t, Pending> pending_;
  std::map<uint64_t, Operator> operators_;  // by session id
  // The client's side: by (operator's node, session id).
  std::map<std::pair<std::string, uint64_t>, std::shared_ptr<RemoteStream>> clients_;
  TimerId check_timer_ = 0;
  std::atomic<size_t> sessions_{0};
};

}  // namespace keel::cluster
