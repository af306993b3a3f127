// Internals of the admin server shared by admin_server.cc (connections, framing, start/stop)
// and admin_commands.cc (what each request does).
// Thread safety: see Context; everything else runs on the loop of the connection it names.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "admin/admin_protocol.h"
#include "admin/admin_server.h"
#include "keel/net/tcp_connection.h"

namespace keel::admin {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// One admin client's state; lives in Context::conns on the client's loop.
struct AdminConn {
  explicit AdminConn(size_t max_request_bytes) : framer(max_request_bytes) {}
  LineFramer framer;
  bool busy = false;  // a reply is being prepared on other loops; further requests wait
  bool peer_closed = false;
  bool closing = false;
};

// What the admin connections and the closures posted for them share. Closures hold it by
// shared_ptr and do nothing once stopped is set; AdminServer::stop() waits out those running,
// so none touches the engines afterwards.
struct Context {
  Context(LoopPool& p, AdminOptions o, std::vector<ReactorEngine*> e)
      : pool(p), options(std::move(o)), engines(std::move(e)), conns(p.size()) {}

  // Index of the engine whose server accepted c, or -1 (loop thread of c).
  int engine_of(const TcpConnection& c) const {
    for (size_t i = 0; i < engines.size(); ++i)
      if (engines[i]->server().owns(c)) return static_cast<int>(i);
    return -1;
  }
  // Loop thread of id.
  AdminConn* conn_state(ConnectionId id) {
    auto& here = conns[id.loop()];
    auto it = here.find(id.value());
    return it == here.end() ? nullptr : &it->second;
  }
  bool is_stopped() const noexcept { return stopped.load(std::memory_order_acquire); }

  LoopPool& pool;
  const AdminOptions options;
  const std::vector<ReactorEngine*> engines;
  std::atomic<bool> stopped{false};
  // Per loop index: that loop's admin connections (touched only on that loop).
  std::vector<std::unordered_map<uint64_t, AdminConn>> conns;
  const Clock::time_point started = Clock::now();
};
using ContextPtr = std::shared_ptr<Context>;

// One reply line. Client-supplied strings (nicks, peers) need not be UTF-8: they are replaced,
// never thrown on.
std::string to_line(const Json& reply);
std::string error_line(const std::string& message);
// At most 64 bytes of a bad value, for error messages.
std::string quote(std::string_view value);

// Loop thread of c: sends line (if not empty), then finishes the connection: FIN once the line
// is out, further input discarded, closed at the peer's FIN or after a few seconds.
void send_last_line(TcpConnection& c, const std::string& line, std::string_view why);

// Any loop thread: delivers a reply prepared elsewhere to admin connection `to`, which then
// goes on with its next request.
void complete(const ContextPtr& ctx, ConnectionId to, std::string reply);

// Loop thread of c: answers one request line, now or (setting st.busy) through complete().
void handle_request(const ContextPtr& ctx, TcpConnection& c, AdminConn& st,
                    const std::string& line);

}  // namespace keel::admin
