// Internals of the admin server shared by admin_server.cc (connections, framing, start/stop)
// and admin_commands.cc (what each request does).
// Thread safety: everything here runs on the admin server's own loop.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "admin/admin_commands.h"
#include "admin/admin_protocol.h"
#include "admin/admin_server.h"
#include "keel/net/tcp_connection.h"

namespace keel::admin {

using Clock = std::chrono::steady_clock;

class EventStream;
class WatchFeed;

// The streaming session an admin connection is in (attach; watch): its events are written as
// they come, between the replies to its requests (admin_session.cc).
struct StreamSession {
  std::shared_ptr<EventStream> stream;
  std::string kind;  // the request that started it: "attach", "watch"
  size_t engine = 0;
  ConnectionId client;
  std::string node;  // a client of another cluster node (attach NODE/ID); empty: this node's
};

// One admin client's state; lives in Context::conns on the admin loop.
struct AdminConn {
  explicit AdminConn(size_t max_request_bytes) : framer(max_request_bytes) {}
  LineFramer framer;
  bool peer_closed = false;
  bool closing = false;
  bool waiting_for_cluster = false;  // a request went to other nodes: the next waits its reply
  std::optional<StreamSession> session;
};

// What the admin connections share. Everything runs on the admin server's own loop; requests
// reach the services only through the keel::Engine interface, so the admin endpoint works the
// same whichever engine runs them (and may wait for an engine's threads: it never runs on one).
struct Context : CommandScope {
  Context(AdminOptions o, std::vector<Engine*> e)
      : CommandScope{std::move(e)}, options(std::move(o)) {}

  const AdminOptions options;
  std::unordered_map<uint64_t, AdminConn> conns;
  // Watched clients by id (admin_watch.cc): what feeds their watchers, and the tap it set.
  struct Watch {
    std::shared_ptr<WatchFeed> feed;
    const ConnectionTap* tap = nullptr;
  };
  std::unordered_map<uint64_t, Watch> watches;
  // Set on a cluster node (AdminServer::set_cluster), before start.
  std::optional<ClusterOps> cluster;
  EventLoop* loop = nullptr;  // the admin loop, for replies that come from other nodes
};

// A request for other nodes (list/stats with "cluster":true, send/kick to "NODE/ID"): sent,
// and answered later; true when it was one (answered or under way).
bool cluster_request(Context& ctx, TcpConnection& c, AdminConn& st, const Json& req);
// Takes the next requests of c (admin_server.cc).
void pump(Context& ctx, TcpConnection& c, AdminConn& st);

// One reply line. Client-supplied strings (nicks, peers) need not be UTF-8: they are replaced,
// never thrown on.
std::string to_line(const Json& reply);
Json error_reply(const std::string& message);  // {"ok":false,"error":message}
// True for an object whose "ok" is true. Replies from other nodes come from the network: this
// never throws, whatever their shape.
inline bool reply_ok(const Json& reply) {
  if (!reply.is_object()) return false;
  auto ok = reply.find("ok");
  return ok != reply.end() && ok->is_boolean() && ok->get<bool>();
}
std::string error_line(const std::string& message);
// At most 64 bytes of a bad value, for error messages.
std::string quote(std::string_view value);

// How long a client being closed (kicked, refused) gets to read its last line and close.
inline constexpr std::chrono::milliseconds kLinger{5000};

// Admin loop (admin_watch.cc): the watch request; its reply line.
std::string cmd_watch(Context& ctx, TcpConnection& c, AdminConn& st, const Json& req);

// Admin loop: answers one request line.
void handle_request(Context& ctx, TcpConnection& c, AdminConn& st, const std::string& line);

// Admin loop (admin_session.cc): the session requests attach, say and detach. nullopt when cmd
// is none of them; else the reply line, or "" when the reply is written later (detach: after
// the session's last events).
std::optional<std::string> session_request(Context& ctx, TcpConnection& c, AdminConn& st,
                                           const std::string& cmd, const Json& req);
// Admin loop: c's output drained (credit back to the session's producer) / c is closing (the
// session's producer is told the operator left).
void session_output_drained(AdminConn& st);
void session_connection_closed(AdminConn& st);

}  // namespace keel::admin
