// AdminServer: the admin endpoint's connections (framing, auth, one request at a time) and its
// start/stop. What each request does is in admin_commands.cc.
#include "admin/admin_server.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_context.h"
#include "keel/engine/reactor.h"
#include "keel/error.h"

namespace keel {
namespace admin {
namespace {
// An operator that sends requests without reading the replies is not read from while this
// much output waits for it.
constexpr size_t kMaxQueuedReplyBytes = 1 << 20;
constexpr size_t kQuoteBytes = 64;
// Operators served at once when the process is out of descriptors.
constexpr size_t kReservedFds = 4;
}  // namespace

std::string to_line(const Json& reply) {
  std::string s = reply.dump(-1, ' ', false, Json::error_handler_t::replace);
  s += '\n';
  return s;
}

Json error_reply(const std::string& message) {
  return Json{{"ok", false}, {"error", message}};
}

std::string error_line(const std::string& message) {
  return to_line(error_reply(message));
}

std::string quote(std::string_view value) {
  return std::string(value.substr(0, kQuoteBytes)) + (value.size() > kQuoteBytes ? "..." : "");
}

namespace {

bool peer_is_trusted(const TcpConnection& c) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(c.fd(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == 0 || cred.uid == ::geteuid();
}

bool can_take_request(const TcpConnection& c, const AdminConn& st) {
  return !st.closing && !st.waiting_for_cluster && c.queued_output_bytes() < kMaxQueuedReplyBytes;
}

AdminConn* conn_state(Context& ctx, ConnectionId id) {
  auto it = ctx.conns.find(id.value());
  return it == ctx.conns.end() ? nullptr : &it->second;
}

ConnectionCallbacks callbacks(Context* ctx) {
  ConnectionCallbacks cb;
  cb.on_open = [ctx](TcpConnection& c) {
    auto it = ctx->conns.try_emplace(c.id().value(), ctx->options.max_request_bytes).first;
    // The socket file is 0600, but it is created before chmod: check who connected anyway.
    if (ctx->options.endpoint.is_unix() && !peer_is_trusted(c)) {
      it->second.closing = true;
      finish_with_last_line(c, error_line("unauthorized"), "admin: untrusted peer", kLinger);
    }
  };
  cb.on_data = [ctx](TcpConnection& c, Buffer& in) {
    AdminConn* st = conn_state(*ctx, c.id());
    if (st && !st->closing) st->framer.feed(in.view());
    in.consume_all();
    if (st) pump(*ctx, c, *st);
  };
  cb.on_peer_closed = [ctx](TcpConnection& c) {
    AdminConn* st = conn_state(*ctx, c.id());
    if (!st) return c.shutdown();
    st->peer_closed = true;
    pump(*ctx, c, *st);
  };
  cb.on_write_complete = [ctx](TcpConnection& c) {
    if (AdminConn* st = conn_state(*ctx, c.id())) {
      session_output_drained(*st);
      pump(*ctx, c, *st);
    }
  };
  cb.on_close = [ctx](TcpConnection& c, const CloseReason&) {
    if (AdminConn* st = conn_state(*ctx, c.id())) session_connection_closed(*st);
    ctx->conns.erase(c.id().value());
  };
  return cb;
}

ServerOptions server_options(const AdminOptions& options) {
  ServerOptions o;
  o.listen.push_back(options.endpoint);
  // When the services have used up every descriptor (EMFILE), operators are still served: the
  // admin endpoint accepts with descriptors of its own, kept in reserve for that.
  o.reserved_fds = kReservedFds;
  return o;
}

}  // namespace

// Takes complete request lines while the replies already queued are being read.
void pump(Context& ctx, TcpConnection& c, AdminConn& st) {
  std::string line;
  while (can_take_request(c, st)) {
    auto status = st.framer.next(line);
    if (status == LineFramer::Status::too_long) {
      st.closing = true;
      finish_with_last_line(c, error_line("request too long"), "admin request too long", kLinger);
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

}  // namespace admin

struct AdminServer::Impl {
  Impl(AdminOptions options, std::vector<Engine*> engines)
      : ctx(std::move(options), std::move(engines)),
        pool(1),
        server(pool, admin::server_options(ctx.options), admin::callbacks(&ctx)) {
    ctx.loop = &pool.loop(0);
  }

  admin::Context ctx;
  LoopPool pool;
  TcpServer server;
  bool started = false;
};

AdminServer::AdminServer(AdminOptions options, std::vector<Engine*> engines)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(engines))) {}

void AdminServer::set_cluster(admin::ClusterOps ops) {
  impl_->ctx.cluster = std::move(ops);
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  Impl& im = *impl_;
  if (im.started) return;
  const AdminOptions& o = im.ctx.options;
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
  im.pool.start();
  im.started = true;
}

void AdminServer::stop() {
  Impl& im = *impl_;
  // A request being answered finishes first: nothing touches the engines once this returns.
  im.server.stop();
  im.pool.stop();
}

const Endpoint& AdminServer::endpoint() const noexcept {
  const auto& bound = impl_->server.endpoints();
  return bound.empty() ? impl_->ctx.options.endpoint : bound.front();
}

std::string default_admin_endpoint() {
  if (::geteuid() == 0) return "unix:/run/keel/admin.sock";  // start() creates /run/keel
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) == nullptr) return "unix:keel-admin.sock";
  return "unix:" + std::string(cwd) + "/keel-admin.sock";
}

}  // namespace keel
