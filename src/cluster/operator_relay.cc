#include "cluster/operator_relay.h"

#include <algorithm>
#include <set>

namespace keel::cluster {
namespace {

// A node unheard for this long ends the sessions with it (heartbeats come every second).
constexpr std::chrono::seconds kSessionSilence{5};

// op_session verbs.
constexpr const char* kEvent = "event";    // client's node -> operator's: an event
constexpr const char* kEnd = "end";        // client's node -> operator's: the last event
constexpr const char* kCredit = "credit";  // operator's -> client's: credit written
constexpr const char* kLeft = "left";      // operator's -> client's: the operator left

// An op_request's extra arguments for a session: its id, the verb, the operator's name.
constexpr const char* kAttach = "attach";
constexpr const char* kSay = "say";
constexpr const char* kSync = "sync";  // answered at once: a barrier, see sync()
// An attach reply's extra argument: whether the client's node took the session.
constexpr const char* kTaken = "taken";

// The event's arguments after the verb: type, bytes, credit, then field names and values.
void append_event(std::vector<std::string>& args, const OperatorEvent& ev) {
  args.push_back(ev.type);
  args.push_back(ev.bytes);
  args.push_back(std::to_string(ev.credit));
  for (const auto& [k, v] : ev.fields) {
    args.push_back(k);
    args.push_back(v);
  }
}

OperatorEvent event_from(const std::vector<std::string>& args, size_t at) {
  OperatorEvent ev;
  if (args.size() < at + 3) return ev;
  ev.type = args[at];
  ev.bytes = args[at + 1];
  ev.credit = std::strtoull(args[at + 2].c_str(), nullptr, 10);
  for (size_t i = at + 3; i + 1 < args.size(); i += 2) ev.fields.emplace_back(args[i], args[i + 1]);
  return ev;
}

uint64_t number(const std::string& text) {
  return std::strtoull(text.c_str(), nullptr, 10);
}

}  // namespace

// The client's side of a session: what the hub posts goes to the operator's node.
class OperatorRelay::RemoteStream final : public OperatorStream {
 public:
  RemoteStream(Backplane& backplane, std::string node, uint64_t session, std::string holder)
      : backplane_(backplane),
        node_(std::move(node)),
        session_(std::to_string(session)),
        holder_(std::move(holder)) {}

  bool post(OperatorEvent ev) override {
    if (!open_.load(std::memory_order_acquire)) return false;
    publish(kEvent, ev);
    return true;
  }
  void end(OperatorEvent last) override {
    if (open_.exchange(false)) publish(kEnd, last);
  }
  bool open() const noexcept override { return open_.load(std::memory_order_acquire); }
  const std::string& holder() const noexcept override { return holder_; }
  void on_written(WrittenFn fn) override { written_ = std::move(fn); }
  void on_operator_left(LeftFn fn) override { left_ = std::move(fn); }

  // Backplane thread.
  void credit(size_t n) {
    if (open() && written_) written_(n);
  }
  void operator_left() {
    if (open_.exchange(false) && left_) left_();
  }
  Executor next;  // the session's later requests (say)

 private:
  void publish(const char* verb, const OperatorEvent& ev) {
    std::vector<std::string> args{session_, node_, verb};
    append_event(args, ev);
    backplane_.publish(EventKind::op_session, std::move(args));
  }

  Backplane& backplane_;
  const std::string node_;  // the operator's
  const std::string session_;
  const std::string holder_;
  std::atomic<bool> open_{true};
  WrittenFn written_;
  LeftFn left_;
};

OperatorRelay::OperatorRelay(Backplane& backplane, Executor executor, SessionExecutor sessions)
    : backplane_(backplane),
      executor_(std::move(executor)),
      session_executor_(std::move(sessions)) {
  backplane_.set_operator_handler([this](const NodeEvent& e) { on_event(e); });
}

OperatorRelay::~OperatorRelay() = default;

void OperatorRelay::ask(const std::string& target, const std::string& request,
                        std::chrono::milliseconds timeout, Done done) {
  backplane_.loop().post([this, target, request, timeout, done = std::move(done)]() mutable {
    send(target, request, 0, {}, timeout, std::move(done));
  });
}

void OperatorRelay::send(const std::string& target, const std::string& request, uint64_t session,
                         std::vector<std::string> extra, std::chrono::milliseconds timeout,
                         Done done) {
  // Heartbeats come every second: a node unheard for 3 s is not waited for.
  std::vector<std::string> expected = target.empty()
                                          ? backplane_.live_nodes(std::chrono::seconds(3))
                                          : std::vector<std::string>{target};
  const uint64_t id = next_id_++;
  Pending& p = pending_[id];
  p.expected = std::move(expected);
  p.done = std::move(done);
  p.session = session;
  if (p.expected.empty() || !backplane_.up()) {
    if (target.empty()) p.expected.clear();
    return finish(id);  // nothing, and the target as missing
  }
  p.timer = backplane_.loop().run_after(timeout, [this, id] { finish(id); });
  std::vector<std::string> args{std::to_string(id), target, request};
  args.insert(args.end(), std::make_move_iterator(extra.begin()),
              std::make_move_iterator(extra.end()));
  backplane_.publish(EventKind::op_request, std::move(args));
}

void OperatorRelay::attach(const std::string& target, const std::string& request,
                           const std::string& holder, std::shared_ptr<OperatorStream> stream,
                           std::chrono::milliseconds timeout, Done done) {
  // The session id is the request's: unique on this node. Taken here, on the caller's thread,
  // because the stream's callbacks (set here, as OperatorStream asks) name it.
  static std::atomic<uint64_t> next_session{1};
  const uint64_t session = next_session++;
  const std::string id = std::to_string(session);
  stream->on_written([this, target, id](size_t credit) {
    backplane_.publish(EventKind::op_session, {id, target, kCredit, std::to_string(credit)});
  });
  stream->on_operator_left([this, target, id, session] {
    backplane_.publish(EventKind::op_session, {id, target, kLeft});
    backplane_.loop().post([this, session] {
      if (operators_.erase(session)) --sessions_;
    });
  });
  backplane_.loop().post([this, target, request, holder, stream = std::move(stream), timeout,
                          session, id, done = std::move(done)]() mutable {
    operators_[session] = Operator{target, std::move(stream), false, {}, std::nullopt};
    session_opened();
    send(target, request, session, {id, kAttach, holder}, timeout, std::move(done));
  });
}

void OperatorRelay::session_request(const OperatorStream* stream, const std::string& request,
                                    std::chrono::milliseconds timeout, Done done) {
  backplane_.loop().post([this, stream, request, timeout, done = std::move(done)]() mutable {
    for (auto& [session, op] : operators_)
      if (op.stream.get() == stream)
        return send(op.node, request, 0, {std::to_string(session), kSay, ""}, timeout,
                    std::move(done));
    done(Answers{});  // the session is over
  });
}

void OperatorRelay::sync(const std::string& target, std::chrono::milliseconds timeout, Done done) {
  // Posted, as publish() is: so after whatever this thread published before.
  backplane_.loop().post([this, target, timeout, done = std::move(done)]() mutable {
    send(target, "", 0, {"0", kSync, ""}, timeout, std::move(done));
  });
}

void OperatorRelay::session_opened() {
  ++sessions_;
  if (check_timer_ == 0)
    check_timer_ =
        backplane_.loop().run_every(std::chrono::seconds(1), [this] { check_sessions(); });
}

size_t OperatorRelay::sessions() const {
  return sessions_.load();
}

void OperatorRelay::on_event(const NodeEvent& e) {
  const std::string& self = backplane_.options().node;
  if (e.kind == EventKind::op_request) return on_request(e);
  if (e.kind == EventKind::op_session) return on_session(e);
  if (e.kind != EventKind::op_reply || e.args.size() < 3 || e.args[1] != self) return;
  auto it = pending_.find(number(e.args[0]));
  if (it == pending_.end()) return;  // answered after the timeout
  Pending& p = it->second;
  auto expected = std::find(p.expected.begin(), p.expected.end(), e.node);
  if (expected == p.expected.end()) return;
  p.expected.erase(expected);
  p.answers.replies.emplace_back(e.node, e.args[2]);
  if (p.session != 0 && (e.args.size() < 4 || e.args[3] != kTaken) && operators_.erase(p.session))
    --sessions_;  // refused: no events will come
  if (p.expected.empty()) {
    backplane_.loop().cancel_timer(p.timer);
    finish(it->first);
  }
}

void OperatorRelay::on_request(const NodeEvent& e) {
  const std::string& self = backplane_.options().node;
  if (e.args.size() < 3 || (!e.args[1].empty() && e.args[1] != self)) return;
  std::vector<std::string> reply_args{e.args[0], e.node};
  if (e.args.size() >= 6 && e.args[4] == kAttach) {
    auto stream = std::make_shared<RemoteStream>(backplane_, e.node, number(e.args[3]), e.args[5]);
    Executor next;
    std::string reply = session_executor_ ? session_executor_(e.args[2], stream, &next)
                                          : std::string(
                                                "{\"ok\":false,\"error\":\"no sessions "
                                                "on this node\"}");
    reply_args.push_back(std::move(reply));
    if (next) {
      stream->next = std::move(next);
      clients_[{e.node, number(e.args[3])}] = stream;
      session_opened();
      reply_args.push_back(kTaken);
    }
  } else if (e.args.size() >= 5 && e.args[4] == kSync) {
    reply_args.push_back("{\"ok\":true}");
  } else if (e.args.size() >= 5 && e.args[4] == kSay) {
    auto it = clients_.find({e.node, number(e.args[3])});
    reply_args.push_back(it != clients_.end() && it->second->open() && it->second->next
                             ? it->second->next(e.args[2])
                             : std::string("{\"ok\":false,\"error\":\"the client is gone\"}"));
  } else {
    reply_args.push_back(executor_ ? executor_(e.args[2]) : std::string("{\"ok\":false}"));
  }
  backplane_.publish(EventKind::op_reply, std::move(reply_args));
}

void OperatorRelay::on_session(const NodeEvent& e) {
  const std::string& self = backplane_.options().node;
  if (e.args.size() < 3 || e.args[1] != self) return;
  const uint64_t session = number(e.args[0]);
  const std::string& verb = e.args[2];
  if (verb == kEvent || verb == kEnd) {  // this node is the operator's
    auto it = operators_.find(session);
    if (it == operators_.end() || it->second.node != e.node) return;  // over
    OperatorEvent ev = event_from(e.args, 3);
    if (verb == kEnd && !it->second.answered)
      it->second.last = std::move(ev);  // after the reply and what came before it
    else if (verb == kEnd)
      end_operator(session, std::move(ev));
    else if (!it->second.answered)
      it->second.waiting.push_back(std::move(ev));
    else
      it->second.stream->post(std::move(ev));
    return;
  }
  auto it = clients_.find({e.node, session});  // this node is the client's
  if (it == clients_.end()) return;
  if (verb == kCredit && e.args.size() >= 4) {
    it->second->credit(number(e.args[3]));
  } else if (verb == kLeft) {
    std::shared_ptr<RemoteStream> stream = std::move(it->second);
    clients_.erase(it);
    --sessions_;
    stream->operator_left();
  }
}

void OperatorRelay::end_operator(uint64_t session, OperatorEvent last) {
  auto it = operators_.find(session);
  if (it == operators_.end()) return;
  Operator op = std::move(it->second);
  operators_.erase(it);
  --sessions_;
  for (OperatorEvent& ev : op.waiting) op.stream->post(std::move(ev));
  op.stream->end(std::move(last));
}

void OperatorRelay::finish(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  p.answers.missing = std::move(p.expected);
  std::sort(p.answers.replies.begin(), p.answers.replies.end());
  const bool answered = p.answers.missing.empty();
  p.done(std::move(p.answers));
  if (p.session == 0) return;
  // The reply went first: the session's events follow it.
  auto op = operators_.find(p.session);
  if (op == operators_.end()) return;
  if (!answered) {
    // No word from the client's node (done was told it failed): if that node takes the session
    // late, it is ended there.
    backplane_.publish(EventKind::op_session, {std::to_string(p.session), op->second.node, kLeft});
    operators_.erase(op);
    --sessions_;
    return;
  }
  op->second.answered = true;
  if (op->second.last) return end_operator(p.session, std::move(*op->second.last));
  for (OperatorEvent& ev : op->second.waiting) op->second.stream->post(std::move(ev));
  op->second.waiting.clear();
}

void OperatorRelay::check_sessions() {
  if (!backplane_.up()) return;  // silence is ours: wait for the link
  std::vector<std::string> live = backplane_.live_nodes(kSessionSilence);
  std::set<std::string> alive(live.begin(), live.end());
  std::vector<uint64_t> lost;
  for (const auto& [session, op] : operators_)
    if (op.answered && !alive.count(op.node)) lost.push_back(session);
  for (uint64_t session : lost) {
    const std::string node = operators_[session].node;
    end_operator(session, {"closed", {}, {{"reason", "node " + node + " is lost"}}, 0});
  }
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second->open() && alive.count(it->first.first)) {
      ++it;
      continue;
    }
    std::shared_ptr<RemoteStream> stream = std::move(it->second);
    it = clients_.erase(it);
    --sessions_;
    stream->operator_left();  // the operator's node is lost; or the client left
  }
}

}  // namespace keel::cluster
