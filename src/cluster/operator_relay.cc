#include "cluster/operator_relay.h"

#include <algorithm>

namespace keel::cluster {

OperatorRelay::OperatorRelay(Backplane& backplane, Executor executor)
    : backplane_(backplane), executor_(std::move(executor)) {
  backplane_.set_operator_handler([this](const NodeEvent& e) { on_event(e); });
}

void OperatorRelay::ask(const std::string& target, const std::string& request,
                        std::chrono::milliseconds timeout, Done done) {
  backplane_.loop().post([this, target, request, timeout, done = std::move(done)]() mutable {
    // Heartbeats come every second: a node unheard for 3 s is not waited for.
    std::vector<std::string> expected = target.empty()
                                            ? backplane_.live_nodes(std::chrono::seconds(3))
                                            : std::vector<std::string>{target};
    if (expected.empty() || !backplane_.up()) {
      Answers none;
      if (!target.empty()) none.missing.push_back(target);
      return done(std::move(none));
    }
    const uint64_t id = next_id_++;
    Pending& p = pending_[id];
    p.expected = std::move(expected);
    p.done = std::move(done);
    p.timer = backplane_.loop().run_after(timeout, [this, id] { finish(id); });
    backplane_.publish(EventKind::op_request, {std::to_string(id), target, request});
  });
}

void OperatorRelay::on_event(const NodeEvent& e) {
  const std::string& self = backplane_.options().node;
  if (e.kind == EventKind::op_request) {
    if (e.args.size() < 3 || (!e.args[1].empty() && e.args[1] != self)) return;
    std::string reply = executor_ ? executor_(e.args[2]) : std::string("{\"ok\":false}");
    backplane_.publish(EventKind::op_reply, {e.args[0], e.node, std::move(reply)});
    return;
  }
  if (e.kind != EventKind::op_reply || e.args.size() < 3 || e.args[1] != self) return;
  uint64_t id = std::strtoull(e.args[0].c_str(), nullptr, 10);
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // answered after the timeout
  Pending& p = it->second;
  auto expected = std::find(p.expected.begin(), p.expected.end(), e.node);
  if (expected == p.expected.end()) return;
  p.expected.erase(expected);
  p.answers.replies.emplace_back(e.node, e.args[2]);
  if (p.expected.empty()) {
    backplane_.loop().cancel_timer(p.timer);
    finish(id);
  }
}

void OperatorRelay::finish(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  p.answers.missing = std::move(p.expected);
  std::sort(p.answers.replies.begin(), p.answers.replies.end());
  p.done(std::move(p.answers));
}

}  // namespace keel::cluster
