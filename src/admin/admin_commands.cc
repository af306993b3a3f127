// The admin requests: list, send, broadcast, kick, stats (docs/protocols.md, "Admin protocol").
// Questions about clients go to every loop at once (a Gather); the last loop to answer sends the
// reply, so no loop ever waits for another.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <tuple>

#include "admin/admin_context.h"

namespace keel::admin {
namespace {

std::string no_such_client(std::string_view who) {
  return error_line("no such client " + quote(who));
}

// What runs on a client's own loop; returns the reply.
using ClientAction = std::function<std::string(Context&, TcpConnection&, size_t engine)>;

// Runs action on the loop of client id (if it is a live client of one of the engines) and
// replies with its result, else "no such client". False when id names no loop at all.
bool post_to_client(const ContextPtr& ctx, ConnectionId admin, uint64_t id_value,
                    ClientAction action) {
  ConnectionId id = ConnectionId::from_value(id_value);
  EventLoop* loop = ctx->pool.loop_for(id);
  if (!loop) return false;
  loop->post([ctx, admin, id, loop, action = std::move(action)] {
    if (ctx->is_stopped()) return;
    TcpConnection* c = loop->find(id);
    int e = c && c->state() != ConnectionState::closed ? ctx->engine_of(*c) : -1;
    complete(ctx, admin,
             e < 0 ? no_such_client(std::to_string(id.value()))
                   : action(*ctx, *c, static_cast<size_t>(e)));
  });
  return true;
}

struct ClientRow {
  size_t engine;
  Clock::time_point opened;
  uint64_t id;
  Json row;
};
struct LoopResult {
  std::vector<ClientRow> rows;
  size_t count = 0;
};

// One question put to every loop without blocking any: each loop visits its own clients, and
// the last loop to finish builds the reply (nullopt: finish started a further step).
struct Gather {
  ContextPtr ctx;
  ConnectionId admin;
  std::atomic<size_t> remaining;
  std::vector<LoopResult> per_loop;
  std::function<void(Context&, TcpConnection&, size_t engine, LoopResult&)> visit;
  std::function<std::optional<std::string>(Gather&)> finish;

  Gather(ContextPtr c, ConnectionId a)
      : ctx(std::move(c)), admin(a), remaining(ctx->pool.size()), per_loop(ctx->pool.size()) {}
  std::vector<ClientRow> rows() {
    std::vector<ClientRow> all;
    for (auto& r : per_loop) std::move(r.rows.begin(), r.rows.end(), std::back_inserter(all));
    std::sort(all.begin(), all.end(), [](const ClientRow& a, const ClientRow& b) {
      return std::tie(a.engine, a.opened, a.id) < std::tie(b.engine, b.opened, b.id);
    });
    return all;
  }
};

void run_gather(const std::shared_ptr<Gather>& g) {
  for (size_t i = 0; i < g->ctx->pool.size(); ++i) {
    EventLoop& loop = g->ctx->pool.loop(i);
    loop.post([g, &loop] {
      Context& ctx = *g->ctx;
      if (ctx.is_stopped()) return;
      LoopResult& out = g->per_loop[loop.index()];
      loop.for_each_connection([&](TcpConnection& c) {
        if (c.state() == ConnectionState::closed) return;
        int e = ctx.engine_of(c);
        if (e >= 0) g->visit(ctx, c, static_cast<size_t>(e), out);
      });
      if (g->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      if (auto reply = g->finish(*g)) complete(g->ctx, g->admin, std::move(*reply));
    });
  }
}

Json describe_client(Context& ctx, TcpConnection& c, size_t engine) {
  Service& service = ctx.engines[engine]->service();
  auto age = Clock::now() - c.opened_at();
  auto since = std::chrono::system_clock::now() -
               std::chrono::duration_cast<std::chrono::system_clock::duration>(age);
  double age_s = std::chrono::duration<double>(age).count();
  Json row{{"id", c.id().value()},
           {"service", service.name()},
           {"peer", c.peer().to_string()},
           {"state", to_string(c.state())},
           {"connected_since", utc_timestamp(since)},
           {"connected_s", std::round(age_s * 10) / 10},
           {"bytes_in", c.bytes_received()},
           {"bytes_out", c.bytes_sent()},
           {"queued", c.queued_output_bytes()}};
  std::vector<std::pair<std::string, std::string>> fields;
  service.describe(c.id(), fields);
  for (auto& [key, value] : fields)
    if (!row.contains(key)) row[key] = value;
  return row;
}

double process_uptime_s(Clock::time_point fallback_start) {
  // /proc/self/stat field 22: start time in clock ticks after boot; /proc/uptime: since boot.
  std::ifstream stat_file("/proc/self/stat");
  std::ifstream uptime_file("/proc/uptime");
  std::string stat;
  double since_boot = 0;
  std::getline(stat_file, stat);
  size_t paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren != std::string::npos && (uptime_file >> since_boot)) {
    std::istringstream fields(stat.substr(paren + 1));
    std::string field;
    for (int i = 3; i <= 22; ++i) fields >> field;  // fields 3..22; field 22 is kept
    double ticks = std::strtod(field.c_str(), nullptr);
    long hz = ::sysconf(_SC_CLK_TCK);
    if (ticks > 0 && hz > 0 && since_boot >= ticks / hz)
      return std::round((since_boot - ticks / hz) * 10) / 10;
  }
  return std::chrono::duration<double>(Clock::now() - fallback_start).count();
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

std::string stats_reply(const Context& ctx) {
  Json services = Json::array();
  for (ReactorEngine* engine : ctx.engines) {
    ServerStats s = engine->server().stats();
    Json endpoints = Json::array();
    for (const Endpoint& ep : engine->endpoints()) endpoints.push_back(ep.to_string());
    services.push_back(Json{{"service", engine->service().name()},
                            {"endpoints", std::move(endpoints)},
                            {"connections", engine->server().connection_count()},
                            {"accepted", s.accepted},
                            {"rejected_over_cap", s.rejected_over_cap},
                            {"accept_errors", s.accept_errors},
                            {"fd_exhaustion", s.fd_exhaustion}});
  }
  return to_line(Json{{"ok", true},
                      {"uptime_s", process_uptime_s(ctx.started)},
                      {"rss_kib", rss_kib()},
                      {"services", std::move(services)}});
}

// A client id in a request: a JSON number or a string of digits.
std::optional<uint64_t> id_field(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  if (v.is_string()) return parse_client_id(v.get_ref<const std::string&>());
  return std::nullopt;
}

const std::string* string_field(const Json& req, const char* key) {
  auto it = req.find(key);
  return it != req.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

// Operator text goes into line protocols: it must be there and be one line.
std::optional<std::string> text_problem(const std::string* text, const char* what) {
  if (!text) return "missing \"" + std::string(what) + "\"";
  if (text->find_first_of("\r\n") != std::string::npos)
    return std::string(what) + " must be one line";
  return std::nullopt;
}

// Replies: a line to send now, or nullopt when a reply will come through complete().
using Reply = std::optional<std::string>;

Reply cmd_list(const ContextPtr& ctx, ConnectionId admin) {
  auto g = std::make_shared<Gather>(ctx, admin);
  g->visit = [](Context& ctx, TcpConnection& c, size_t e, LoopResult& out) {
    out.rows.push_back({e, c.opened_at(), c.id().value(), describe_client(ctx, c, e)});
  };
  g->finish = [](Gather& g) -> Reply {
    Json clients = Json::array();
    for (ClientRow& r : g.rows()) clients.push_back(std::move(r.row));
    return to_line(Json{{"ok", true}, {"clients", std::move(clients)}});
  };
  run_gather(g);
  return std::nullopt;
}

Reply cmd_send(const ContextPtr& ctx, ConnectionId admin, const Json& req) {
  const std::string* text = string_field(req, "text");
  if (auto bad = text_problem(text, "text")) return error_line(*bad);
  auto to = req.find("to");
  if (to == req.end()) return error_line("missing \"to\" (a client id or address)");
  ClientAction action = [text = *text](Context& ctx, TcpConnection& c, size_t e) {
    if (!c.send(ctx.engines[e]->service().operator_line(text)))
      return error_line("client " + std::to_string(c.id().value()) + " is closing");
    return to_line(Json{{"ok", true}, {"sent_to", Json::array({c.id().value()})}});
  };
  if (auto id = id_field(*to)) {
    if (post_to_client(ctx, admin, *id, std::move(action))) return std::nullopt;
    return no_such_client(std::to_string(*id));
  }
  if (!to->is_string()) return error_line("\"to\" must be a client id or an address");
  // An address: find which client has it (on whichever loop), then act on that client's loop.
  auto g = std::make_shared<Gather>(ctx, admin);
  std::string address = to->get<std::string>();
  g->visit = [address](Context&, TcpConnection& c, size_t e, LoopResult& out) {
    if (c.peer().to_string() == address) out.rows.push_back({e, c.opened_at(), c.id().value(), {}});
  };
  g->finish = [address, action](Gather& g) -> Reply {
    auto rows = g.rows();
    if (rows.size() > 1)
      return error_line("address " + quote(address) + " matches " + std::to_string(rows.size()) +
                        " clients: use an id");
    if (rows.size() == 1 && post_to_client(g.ctx, g.admin, rows[0].id, action)) return std::nullopt;
    return no_such_client(address);
  };
  run_gather(g);
  return std::nullopt;
}

Reply cmd_kick(const ContextPtr& ctx, ConnectionId admin, const Json& req) {
  auto it = req.find("id");
  std::optional<uint64_t> id = it == req.end() ? std::nullopt : id_field(*it);
  if (!id) return error_line("missing \"id\" (a client id)");
  std::string reason;
  if (const std::string* r = string_field(req, "reason")) reason = *r;
  if (!reason.empty())
    if (auto bad = text_problem(&reason, "reason")) return error_line(*bad);
  ClientAction action = [reason](Context& ctx, TcpConnection& c, size_t e) {
    uint64_t kicked = c.id().value();
    send_last_line(c, ctx.engines[e]->service().kick_line(reason),
                   reason.empty() ? "kicked by operator" : "kicked by operator: " + reason);
    return to_line(Json{{"ok", true}, {"kicked", kicked}});
  };
  if (post_to_client(ctx, admin, *id, std::move(action))) return std::nullopt;
  return no_such_client(std::to_string(*id));
}

// Room members come from the services (any thread); sends go by id.
std::string broadcast_to_room(Context& ctx, const std::vector<bool>& chosen,
                              const std::string& room, const std::string& text) {
  bool found = false;
  size_t recipients = 0;
  for (size_t i = 0; i < ctx.engines.size(); ++i) {
    Service& service = ctx.engines[i]->service();
    if (!chosen[i] || !service.has_rooms()) continue;
    std::vector<ConnectionId> members = service.room_members(room);
    if (members.empty()) continue;
    found = true;
    std::string line = service.operator_line(text);
    for (ConnectionId id : members)
      if (ctx.engines[i]->send(id, line)) ++recipients;
  }
  if (!found) return error_line("no such room " + quote(room));
  return to_line(Json{{"ok", true}, {"recipients", recipients}});
}

Reply cmd_broadcast(const ContextPtr& ctx, ConnectionId admin, const Json& req) {
  const std::string* text = string_field(req, "text");
  if (auto bad = text_problem(text, "text")) return error_line(*bad);
  const std::string* only = string_field(req, "service");
  if (req.contains("service") && !only) return error_line("\"service\" must be a string");
  std::vector<bool> chosen(ctx->engines.size());
  std::vector<std::string> lines(ctx->engines.size());
  bool any = false;
  for (size_t i = 0; i < ctx->engines.size(); ++i) {
    Service& service = ctx->engines[i]->service();
    chosen[i] = !only || *only == service.name();
    if (chosen[i]) lines[i] = service.operator_line(*text);
    any = any || chosen[i];
  }
  if (only && !any) return error_line("no such service " + quote(*only));
  if (req.contains("room")) {
    const std::string* room = string_field(req, "room");
    if (!room) return error_line("\"room\" must be a string");
    return broadcast_to_room(*ctx, chosen, *room, *text);
  }
  auto g = std::make_shared<Gather>(ctx, admin);
  g->visit = [chosen, lines](Context&, TcpConnection& c, size_t e, LoopResult& out) {
    if (chosen[e] && c.send(lines[e])) ++out.count;
  };
  g->finish = [](Gather& g) -> Reply {
    size_t recipients = 0;
    for (const LoopResult& r : g.per_loop) recipients += r.count;
    return to_line(Json{{"ok", true}, {"recipients", recipients}});
  };
  run_gather(g);
  return std::nullopt;
}

}  // namespace

void handle_request(const ContextPtr& ctx, TcpConnection& c, AdminConn& st,
                    const std::string& line) {
  Json req = Json::parse(line, nullptr, false);
  if (!ctx->options.endpoint.is_unix()) {  // TCP: every request carries the token
    const std::string* token = req.is_object() ? string_field(req, "token") : nullptr;
    if (!token || !ctx->options.token || !constant_time_equal(*token, *ctx->options.token)) {
      st.closing = true;
      send_last_line(c, error_line("unauthorized"), "admin: unauthorized");
      return;
    }
  }
  Reply reply;
  const std::string* cmd = req.is_object() ? string_field(req, "cmd") : nullptr;
  if (req.is_discarded())
    reply = error_line("malformed JSON");
  else if (!req.is_object())
    reply = error_line("a request is a JSON object");
  else if (!cmd)
    reply = error_line("missing \"cmd\"");
  else if (*cmd == "list")
    reply = cmd_list(ctx, c.id());
  else if (*cmd == "send")
    reply = cmd_send(ctx, c.id(), req);
  else if (*cmd == "broadcast")
    reply = cmd_broadcast(ctx, c.id(), req);
  else if (*cmd == "kick")
    reply = cmd_kick(ctx, c.id(), req);
  else if (*cmd == "stats")
    reply = stats_reply(*ctx);
  else
    reply = error_line("unknown cmd " + quote(*cmd) + " (list, send, broadcast, kick or stats)");
  if (reply)
    c.send(*reply);
  else
    st.busy = true;
}

}  // namespace keel::admin
