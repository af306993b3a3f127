// The admin requests list, send, broadcast, kick and stats as a function of a JSON request, so
// the admin endpoint (`keel ctl`) and the HTTP endpoint (/api/...) answer alike.
// Thread safety: run_command() from any thread that is not one of the engines' own (it may wait
// for their threads, as Engine::visit does).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "admin/admin_fields.h"
#include "keel/engine/engine.h"
#include "keel/operator.h"
#include "keel/operator_stream.h"

namespace keel::admin {

using Json = nlohmann::ordered_json;

// What requests are answered about: every service the process runs, in `list` order, and when
// the process started serving (the uptime's fallback).
struct CommandScope {
  std::vector<Engine*> engines;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// A cluster node's way to the other nodes (a service runs with --redis): how `list` and
// `stats` with "cluster":true, `send`/`kick` to "NODE/ID" (admin_cluster.cc), and `attach` to
// "NODE/ID" (admin_session.cc) reach them.
struct ClusterOps {
  using Replies = std::vector<std::pair<std::string, Json>>;  // node, its reply
  using Done = std::function<void(Replies replies, std::vector<std::string> missing)>;
  std::string node;  // this node
  // Runs request on target (a node, or "" every other node); done on another thread.
  std::function<void(const std::string& target, const Json& request, Done done)> ask;
  // Starts a session with a client of node target (an attach request); its events are posted
  // to stream after done has the reply. holder names the operator there. Called on the admin
  // loop (it sets stream's callbacks).
  std::function<void(const std::string& target, const Json& request, const std::string& holder,
                     std::shared_ptr<OperatorStream> stream, Done done)>
      attach;
  // A request (say) in the session that stream started.
  std::function<void(const OperatorStream* stream, const Json& request, Done done)> session;
  // Done once node target has read what this node sent it before (an operator's leave): its
  // reply {"ok":true}, or none (missing) if it did not answer in time.
  std::function<void(const std::string& target, Done done)> sync;
};

// The attach request for an operator on another node (cluster::OperatorRelay's session
// executor): attaches the hub client req["to"] names to stream, and on success sets *say to
// what answers the session's say requests. The reply, as the admin endpoint's attach reply.
// Thread: any but an engine's own.
Json attach_for_remote(const CommandScope& scope, const Json& req,
                       std::shared_ptr<OperatorStream> stream,
                       std::function<Json(const Json& req)>* say);

// A service's messages in and out: its own count (OperatorHooks::message_counts) when it keeps
// one, else the engine's reads and sends.
inline MessageCounts message_counts(const Service& service, const EngineTraffic& traffic) {
  if (std::optional<MessageCounts> own = operator_hooks(service).message_counts()) return *own;
  return {traffic.reads, traffic.sends};
}

// A live client and the engine that serves it.
struct FoundClient {
  size_t engine;
  ClientSnapshot snapshot;
};

// The client a request names: an id, or an address that exactly one client has. Otherwise
// nullopt, with error set to "no such client 17" or "address A matches 2 clients: use an id".
std::optional<FoundClient> find_client(const CommandScope& scope, const ClientRef& who,
                                       std::string& error);

// `list` rows of the clients of the named service (every service when unset) that `keep`
// accepts (all when it is empty), in `list` order: the first `limit` rows, and how many
// clients matched in all. A row is built only for what `keep` must see and what is returned,
// so a page of a 10,000-client server does not build 10,000 rows.
struct ClientRows {
  Json rows = Json::array();
  size_t matched = 0;
};
ClientRows list_clients(const CommandScope& scope, const std::optional<std::string>& service,
                        const std::function<bool(const Json& row)>& keep, size_t limit);

// A small /proc file, read with plain system calls; empty when it cannot be opened (the
// process may be out of descriptors: the admin and HTTP endpoints answer then too).
std::string read_proc_file(const char* path);

// The reply object of one request ({"ok":true,...} or {"ok":false,"error":"..."}); a request
// that is not an object (or a discarded parse) is answered with an error too.
Json run_command(const CommandScope& scope, const Json& request);

}  // namespace keel::admin
