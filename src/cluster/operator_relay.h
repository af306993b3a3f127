// OperatorRelay: an operator's request (keel ctl, admin protocol JSON) run on other nodes of
// the cluster, through the backplane's events: op_request to a node (or every node), each runs
// it with the executor it was given (the admin endpoint's own command runner) and answers with
// op_reply. The asker gets every reply once all the nodes it expected answered, or at the
// timeout with the names of those that did not.
// Thread safety: ask() from any thread; done and the executor run on the backplane thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cluster/backplane.h"

namespace keel::cluster {

class OperatorRelay {
 public:
  // Runs a request (JSON text) on this node; the reply as JSON text.
  using Executor = std::function<std::string(const std::string& request)>;
  struct Answers {
    std::vector<std::pair<std::string, std::string>> replies;  // node, reply JSON
    std::vector<std::string> missing;                          // expected, not answered
  };
  using Done = std::function<void(Answers)>;

  // Routes the backplane's operator events here (before the backplane starts).
  OperatorRelay(Backplane& backplane, Executor executor);

  // target: a node's name, or empty for every other live node. With no node to ask (or the
  // link down), done gets at once what it can: nothing, and the target as missing.
  void ask(const std::string& target, const std::string& request, std::chrono::milliseconds timeout,
           Done done);

 private:
  struct Pending {
    std::vector<std::string> expected;
    Answers answers;
    Done done;
    TimerId timer = 0;
  };
  void on_event(const NodeEvent& e);
  void finish(uint64_t id);

  Backplane& backplane_;
  Executor executor_;
  // Loop thread only.
  uint64_t next_id_ = 1;
  std::map<uint64_t, Pending> pending_;
};

}  // namespace keel::cluster
