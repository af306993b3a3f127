// ClusterLink: what a service needs of its cluster (Backplane implements it; tests may fake
// it): publish its events to the other nodes, and claim and release names cluster-wide.
// Thread safety: every method from any thread; claim's callback runs on the link's thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cluster/node_event.h"
#include "keel/operator.h"

namespace keel::cluster {

using keel::ClusterStatus;

enum class ClaimResult {
  claimed,      // the name is this node's
  taken,        // another node holds it
  unavailable,  // Redis could not be asked (down, or an error reply)
};

class ClusterLink {
 public:
  using ClaimFn = std::function<void(ClaimResult, const std::string& holder)>;
  // Events of one thread reach the other nodes in the order published.
  virtual void publish(EventKind kind, std::vector<std::string> args) = 0;
  virtual void claim(const std::string& name, ClaimFn done) = 0;
  virtual void release(const std::string& name) = 0;
  // This node's name and the link's counters (ClusterStatus.nodes is the service's to fill).
  virtual ClusterStatus status() const = 0;

 protected:
  ~ClusterLink() = default;
};

}  // namespace keel::cluster
