// AdminServer: the admin endpoint's connections (framing, auth, one request at a time) and its
// start/stop. What each request does is in admin_commands.cc.
#include "admin/admin_server.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_context.h"
#include "keel/error.h"

namespace keel {
namespace admin {
namespace {
// A client being closed (kicked, refused) gets this long to read its last line and close.
constexpr std::chrono::milliseconds kLinger{5000};
// An operator that sends requests without reading the replies is not read from while this
// much output waits for it.
constexpr size_t kMaxQueuedReplyBytes = 1 << 20;
constexpr size_t kQuoteBytes = 64;
}  // namespace

std::string to_line(const Json& reply) {
  std::string s = reply.dump(-1, ' ', false, Json::error_handler_t::replace);
  s += '\n';
  return s;
}

std::string error_line(const std::string& message) {
  return to_line(Json{{"ok", false}, {"error", message}});
}

std::string quote(std::string_view value) {
  return std::string(value.substr(0, kQuoteBytes)) + (value.size() > kQuoteBytes ? "..." : "");
}

void send_last_line(TcpConnection& c, const std::string& line, std::string_view why) {
  if (!line.empty()) c.send(line);
  c.close_gracefully(why);
  EventLoop& loop = c.loop();
  loop.run_after(kLinger, [&loop, id = c.id()] {
    if (TcpConnection* late = loop.find(id)) late->force_close("did not close in time");
  });
}

namespace {
void pump(const ContextPtr& ctx, TcpConnection& c, AdminConn& st);
}  // namespace

void complete(const ContextPtr& ctx, ConnectionId to, std::string reply) {
  EventLoop* loop = ctx->pool.loop_for(to);
  loop->post([ctx, to, loop, reply = std::move(reply)] {
    if (ctx->is_stopped()) return;
    TcpConnection* c = loop->find(to);
    AdminConn* st = ctx->conn_state(to);
    if (!c || !st) return;  // the operator went away
    c->send(reply);
    st->busy = false;
    pump(ctx, *c, *st);
  });
}

namespace {

bool peer_is_trusted(const TcpConnection& c) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(c.fd(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == 0 || cred.uid == ::geteuid();
}

bool can_take_request(const TcpConnection& c, const AdminConn& st) {
  return !st.busy && !st.closing && c.queued_output_bytes() < kMaxQueuedReplyBytes;
}

// Takes complete request lines while no reply is outstanding (replies keep request order) and
// the replies already queued are being read.
void pump(const ContextPtr& ctx, TcpConnection& c, AdminConn& st) {
  std::string line;
  while (can_take_request(c, st)) {
    auto status = st.framer.next(line);
    if (status == LineFramer::Status::too_long) {
      st.closing = true;
      send_last_line(c, error_line("request too long"), "admin request too long");
      return;
    }
    if (status == LineFramer::Status::need_more) {
      if (!st.peer_closed) break;
      if (!st.framer.take_rest(line)) {  // the client is done and every reply is out
        st.closing = true;
        c.shutdown();
        return;
      }
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    handle_request(ctx, c, st, line);
  }
  if (st.closing) return;
  if (can_take_request(c, st))
    c.resume_reading();
  else
    c.pause_reading();
}

ConnectionCallbacks callbacks(const ContextPtr& ctx) {
  ConnectionCallbacks cb;
  cb.on_open = [ctx](TcpConnection& c) {
    auto it = ctx->conns[c.loop().index()]
                  .try_emplace(c.id().value(), ctx->options.max_request_bytes)
                  .first;
    // The socket file is 0600, but it is created before chmod: check who connected anyway.
    if (ctx->options.endpoint.is_unix() && !peer_is_trusted(c)) {
      it->second.closing = true;
      send_last_line(c, error_line("unauthorized"), "admin: untrusted peer");
    }
  };
  cb.on_data = [ctx](TcpConnection& c, Buffer& in) {
    AdminConn* st = ctx->conn_state(c.id());
    if (st && !st->closing) st->framer.feed(in.view());
    in.consume_all();
    if (st) pump(ctx, c, *st);
  };
  cb.on_peer_closed = [ctx](TcpConnection& c) {
    AdminConn* st = ctx->conn_state(c.id());
    if (!st) return c.shutdown();
    st->peer_closed = true;
    pump(ctx, c, *st);
  };
  cb.on_write_complete = [ctx](TcpConnection& c) {
    if (AdminConn* st = ctx->conn_state(c.id())) pump(ctx, c, *st);
  };
  cb.on_close = [ctx](TcpConnection& c, const CloseReason&) {
    ctx->conns[c.loop().index()].erase(c.id().value());
  };
  return cb;
}

ServerOptions server_options(const AdminOptions& options) {
  ServerOptions o;
  o.listen.push_back(options.endpoint);
  return o;
}

}  // namespace
}  // namespace admin

using admin::ContextPtr;

struct AdminServer::Impl {
  Impl(LoopPool& pool, AdminOptions options, std::vector<ReactorEngine*> engines)
      : ctx(std::make_shared<admin::Context>(pool, std::move(options), std::move(engines))),
        server(pool, admin::server_options(ctx->options), admin::callbacks(ctx)) {}

  ContextPtr ctx;
  TcpServer server;
  bool started = false;
};

AdminServer::AdminServer(LoopPool& pool, AdminOptions options, std::vector<ReactorEngine*> engines)
    : impl_(std::make_unique<Impl>(pool, std::move(options), std::move(engines))) {}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  Impl& im = *impl_;
  if (im.started) return;
  const AdminOptions& o = im.ctx->options;
  const std::string where = "admin endpoint " + o.endpoint.to_string();
  // The default place for root; only a server about to bind there creates it (never a client or
  // `keel --help`). If this fails, the bind below names the problem.
  if (o.endpoint.unix_path().starts_with("/run/keel/")) ::mkdir("/run/keel", 0700);
  if (!o.endpoint.is_unix()) {
    if (!admin::is_loopback(o.endpoint))
      throw Error(where +
                  ": not a loopback address (use unix:/path, 127.0.0.1:PORT or [::1]:PORT)");
    if (!o.token || o.token->empty())
      throw Error(where + ": TCP needs a token (--admin-token-file)");
  }
  try {
    im.server.start();
  } catch (const Error& e) {
    throw Error("admin endpoint: " + std::string(e.what()), e.errno_value());  // say whose bind
  }
  if (o.endpoint.is_unix() && ::chmod(o.endpoint.unix_path().c_str(), 0600) != 0) {
    int err = errno;
    im.server.stop();
    throw_system_error("chmod 0600", o.endpoint.to_string(), err);
  }
  im.started = true;
}

void AdminServer::stop() {
  Impl& im = *impl_;
  im.server.stop();
  im.ctx->stopped.store(true, std::memory_order_release);
  // A closure that saw stopped == false still runs on some loop: this waits it out, so nothing
  // touches the engines once stop() returns.
  im.ctx->pool.run_on_all_and_wait([](EventLoop&) {});
}

const Endpoint& AdminServer::endpoint() const noexcept {
  const auto& bound = impl_->server.endpoints();
  return bound.empty() ? impl_->ctx->options.endpoint : bound.front();
}

std::string default_admin_endpoint() {
  if (::geteuid() == 0) return "unix:/run/keel/admin.sock";  // start() creates /run/keel
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) == nullptr) return "unix:keel-admin.sock";
  return "unix:" + std::string(cwd) + "/keel-admin.sock";
}

}  // namespace keel
