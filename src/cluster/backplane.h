// Backplane: this node's link to the other keel nodes of a cluster, through one Redis
// (docs/operations.md, "Running a cluster"). It runs one keel EventLoop on a thread of its own
// ("keel-cluster") driving two RedisLinks: the writer (XADD of this node's events, name claims,
// the node's lease) and the reader (XREAD BLOCK on the event stream). No call blocks a server
// loop: services hand events over with publish(), which posts to the backplane's loop.
//
// Events go into one Redis stream (`<prefix>events`, trimmed to about stream_max_len entries)
// rather than pub/sub: a reader that reconnects continues after the last entry it read, so an
// event that reached Redis is delivered even when the reader's own link was down meanwhile.
// Every event carries the node and a per-node sequence number (NodeEvent): the reader drops
// repeats and its own events, and counts a gap in a node's numbers as lost.
//
// While Redis is unreachable, events wait in order, up to outage_buffer_bytes, and are written
// when the link returns; beyond that they are dropped, and counted by this node only
// (stats().dropped_events; a dropped event spends no sequence number, so readers see no gap). An
// event whose write was not confirmed when the link dropped is written again (the receivers drop
// the repeat), so an event is delivered at most once, and once exactly unless it was counted
// dropped by its node or lost (a gap: Redis forgot it) by the reader.
//
// Names (chat nicknames) are claimed cluster-wide: a key `<prefix>name:<name>` holding the node,
// with a lease the node renews every lease/3 for all its names at once. A node that dies stops
// renewing and its names are free after the lease. After a Redis restart the renewal claims the
// names again; a name another node took meanwhile is reported through on_names_lost.
//
// Thread safety: publish(), claim(), release(), stats() and up() from any thread. The callbacks
// run on the backplane's thread. start() and stop() from the thread that owns the object.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cluster/cluster_link.h"
#include "cluster/node_event.h"
#include "cluster/redis_address.h"
#include "keel/net/event_loop.h"

struct redisReply;  // hiredis

namespace keel::cluster {

class RedisLink;

struct BackplaneOptions {
  RedisAddress redis;
  std::string node;              // this node's name; unique in the cluster
  std::string prefix = "keel:";  // of every key this node uses ("keel:chat:")
  size_t outage_buffer_bytes = 4u << 20;
  size_t stream_max_len = 100'000;
  std::chrono::milliseconds name_lease{10'000};
  std::chrono::milliseconds heartbeat{1'000};
  // Redis link timings (tests shorten them).
  std::chrono::milliseconds reply_timeout{3'000};
  std::chrono::milliseconds backoff_max{2'000};
};

// ClusterStatus's counters (its node and nodes are left to status() and the service), and two
// a test wants to see.
struct BackplaneStats : ClusterStatus {
  uint64_t repeats = 0;     // events read twice and dropped
  uint64_t bad_events = 0;  // stream entries that were not keel events
};

class Backplane final : public ClusterLink {
 public:
  using EventFn = std::function<void(const NodeEvent&)>;
  using StateFn = std::function<void(bool up)>;
  using NamesLostFn = std::function<void(const std::vector<std::string>& names)>;

  Backplane(BackplaneOptions options, EventFn on_event, StateFn on_state, NamesLostFn names_lost);
  ~Backplane();
  Backplane(const Backplane&) = delete;
  Backplane& operator=(const Backplane&) = delete;

  void start();
  // Publishes `gone` (if the link is up, waiting at most timeout for it to be written), drops
  // this node's names, and stops the thread.
  void stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

  // Any thread. Events of one thread are written in the order published.
  void publish(EventKind kind, std::vector<std::string> args) override;
  // Any thread. done runs on the backplane thread.
  void claim(const std::string& name, ClaimFn done) override;
  void release(const std::string& name) override;

  // Both links connected and this node's read position known: what any node publishes from
  // now on reaches it.
  bool up() const noexcept { return up_.load(std::memory_order_relaxed); }
  // Before start(): the operator's events (op_request, op_reply, op_session) go to fn instead
  // of on_event.
  void set_operator_handler(EventFn fn) { on_operator_ = std::move(fn); }
  // Loop thread: the other nodes heard from within max_silence (any event: heartbeats come
  // every `heartbeat`), by name.
  std::vector<std::string> live_nodes(std::chrono::milliseconds max_silence) const;
  BackplaneStats stats() const;
  ClusterStatus status() const override;
  const BackplaneOptions& options() const noexcept { return options_; }
  EventLoop& loop() noexcept { return loop_; }

 private:
  struct Outgoing {
    std::string bytes;  // the encoded event
  };
  void on_link_state();
  void flush();
  void read_next();
  void on_entries(const ::redisReply* reply);
  void deliver(std::string_view id, std::string_view bytes);
  void renew_names();
  void heartbeat();
  void stop_when_written(EventLoop::Clock::time_point deadline);

  BackplaneOptions options_;
  EventFn on_event_;
  EventFn on_operator_;
  StateFn on_state_;
  NamesLostFn on_names_lost_;
  EventLoop loop_;
  std::thread thread_;
  std::unique_ptr<RedisLink> writer_;
  std::unique_ptr<RedisLink> reader_;
  std::atomic<bool> up_{false};
  std::atomic<size_t> nodes_{1};  // this one and those heard from lately (status())
  bool was_up_ = false;

  // Loop thread only.
  uint64_t next_seq_;
  std::deque<Outgoing> waiting_;  // not written yet
  std::deque<Outgoing> unacked_;  // written, reply not seen: written again if the link drops
  std::atomic<size_t> waiting_bytes_{0};  // written on the loop thread, read by stats()
  std::string last_id_;                   // of the last stream entry read; empty: not known yet
  bool reading_ = false;
  std::unordered_map<std::string, uint64_t> last_seq_;                   // per node
  std::unordered_map<std::string, EventLoop::Clock::time_point> heard_;  // per node
  std::set<std::string> names_;                                          // claimed by this node
  bool stopping_ = false;
  TimerId heartbeat_timer_ = 0;
  TimerId renew_timer_ = 0;

  mutable std::mutex stats_mutex_;
  BackplaneStats stats_;  // guarded by stats_mutex_ (up and buffered_bytes filled in stats())
};

}  // namespace keel::cluster
