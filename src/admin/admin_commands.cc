// The admin requests: list, send, broadcast, kick, stats (docs/protocols.md, "Admin protocol").
// Every request runs on the admin loop and reaches the services through keel::Engine only:
// visit() for who is connected, the Server verbs for what to do to them.
#include "admin/admin_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "admin/admin_context.h"
#include "admin/admin_fields.h"
#include "admin/admin_token.h"
#include "keel/engine/reactor.h"
#include "keel/operator.h"

namespace keel::admin {
namespace {

Json no_such_client(std::string_view who) {
  return error_reply("no such client " + quote(who));
}

using Client = FoundClient;

// Every live client of every engine, in `list` order: by service, then by age.
std::vector<Client> all_clients(const CommandScope& ctx) {
  std::vector<Client> all;
  for (size_t e = 0; e < ctx.engines.size(); ++e)
    ctx.engines[e]->visit([&](const ClientSnapshot& s) { all.push_back({e, s}); });
  std::sort(all.begin(), all.end(), [](const Client& a, const Client& b) {
    return std::make_tuple(a.engine, a.snapshot.opened_at, a.snapshot.id.value()) <
           std::make_tuple(b.engine, b.snapshot.opened_at, b.snapshot.id.value());
  });
  return all;
}

Json describe_client(const CommandScope& ctx, const Client& client) {
  const ClientSnapshot& c = client.snapshot;
  Service& service = ctx.engines[client.engine]->service();
  auto age = Clock::now() - c.opened_at;
  auto since = std::chrono::system_clock::now() -
               std::chrono::duration_cast<std::chrono::system_clock::duration>(age);
  double age_s = std::chrono::duration<double>(age).count();
  Json row{{"id", c.id.value()},
           {"service", service.name()},
           {"peer", c.peer.to_string()},
           {"state", to_string(c.state)},
           {"connected_since", utc_timestamp(since)},
           {"connected_s", std::round(age_s * 10) / 10},
           {"bytes_in", c.bytes_in},
           {"bytes_out", c.bytes_out},
           {"queued", c.queued_bytes}};
  if (c.pid != 0) row["pid"] = c.pid;
  if (!c.transport.empty()) row["transport"] = c.transport;
  OperatorHooks::Fields fields;
  operator_hooks(service).describe(c.id, fields);
  for (auto& [key, value] : fields)
    if (!row.contains(key)) row[key] = value;
  return row;
}

double process_uptime_s(Clock::time_point fallback_start) {
  // /proc/self/stat field 22: start time in clock ticks after boot; /proc/uptime: since boot.
  std::string stat = read_proc_file("/proc/self/stat");
  std::string uptime = read_proc_file("/proc/uptime");
  double since_boot = uptime.empty() ? 0 : std::strtod(uptime.c_str(), nullptr);
  size_t paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren != std::string::npos && since_boot > 0) {
    // Fields 3..22 follow the parenthesis, one space apart; field 22 is kept. (No iostream:
    // out of descriptors, the sanitizers' check of a stream's type fails.)
    const char* field = stat.c_str() + paren + 1;
    for (int i = 3; i <= 22 && *field; ++i) {
      while (*field == ' ') ++field;
      if (i < 22)
        while (*field && *field != ' ') ++field;
    }
    double ticks = std::strtod(field, nullptr);
    long hz = ::sysconf(_SC_CLK_TCK);
    if (ticks > 0 && hz > 0 && since_boot >= ticks / hz)
      return std::round((since_boot - ticks / hz) * 10) / 10;
  }
  return std::chrono::duration<double>(Clock::now() - fallback_start).count();
}

long rss_kib() {
  std::string status = read_proc_file("/proc/self/status");
  size_t at = status.find("\nVmRSS:");
  return at == std::string::npos ? -1 : std::strtol(status.c_str() + at + 7, nullptr, 10);
}

Json stats_reply(const CommandScope& ctx) {
  Json services = Json::array();
  for (Engine* engine : ctx.engines) {
    EngineStats s = engine->stats();
    EngineTraffic traffic = engine->traffic();
    MessageCounts messages = message_counts(engine->service(), traffic);
    Json endpoints = Json::array();
    for (const Endpoint& ep : engine->endpoints()) endpoints.push_back(ep.to_string());
    Json row{{"service", engine->service().name()},
             {"model", engine->model()},
             {"endpoints", std::move(endpoints)},
             {"connections", engine->connection_count()},
             {"accepted", s.accepted},
             {"rejected_over_cap", s.rejected_over_cap},
             {"rejected_per_ip", s.rejected_per_ip},
             {"accept_errors", s.accept_errors},
             {"fd_exhaustion", s.fd_exhaustion},
             {"open_failures", s.open_failures},
             {"bytes_in", traffic.bytes_in},
             {"bytes_out", traffic.bytes_out},
             {"messages_in", messages.in},
             {"messages_out", messages.out},
             {"queued_bytes", traffic.queued_bytes},
             {"slow_consumer_drops", s.slow_consumer_drops}};
    Json closed = Json::object();
    for (size_t k = 0; k < s.closed.size(); ++k)
      closed[to_string(static_cast<CloseReason::Kind>(k))] = s.closed[k];
    row["closed"] = std::move(closed);
    if (std::optional<ClusterStatus> c = operator_hooks(engine->service()).cluster_status())
      row["cluster"] = Json{{"node", c->node},
                            {"up", c->up},
                            {"nodes", c->nodes},
                            {"published", c->published},
                            {"delivered", c->delivered},
                            {"dropped_events", c->dropped_events},
                            {"lost_events", c->lost_events},
                            {"reconnects", c->reconnects},
                            {"buffered_bytes", c->buffered_bytes},
                            {"last_error", c->last_error}};
    if (s.threads) row["threads"] = s.threads;
    if (s.processes) row["processes"] = s.processes;
    if (!s.workers.empty()) {
      Json workers = Json::array();
      for (const WorkerRow& w : s.workers)
        workers.push_back(Json{{"pid", w.pid},
                               {"restarts", w.restarts},
                               {"accepted", w.accepted},
                               {"active", w.active}});
      row["workers"] = std::move(workers);
    }
    services.push_back(std::move(row));
  }
  return Json{{"ok", true},
              {"uptime_s", process_uptime_s(ctx.started)},
              {"rss_kib", rss_kib()},
              {"services", std::move(services)}};
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

// find_client() with its error as a reply.
std::optional<Client> find_client(const CommandScope& ctx, const ClientRef& who, Json& error) {
  std::string text;
  std::optional<Client> found = find_client(ctx, who, text);
  if (!found) error = error_reply(text);
  return found;
}

Json cmd_list(const CommandScope& ctx) {
  Json clients = Json::array();
  for (const Client& c : all_clients(ctx)) clients.push_back(describe_client(ctx, c));
  return Json{{"ok", true}, {"clients", std::move(clients)}};
}

}  // namespace

ClientRows list_clients(const CommandScope& scope, const std::optional<std::string>& service,
                        const std::function<bool(const Json& row)>& keep, size_t limit) {
  CommandScope chosen{{}, scope.started};
  for (Engine* engine : scope.engines)
    if (!service || engine->service().name() == *service) chosen.engines.push_back(engine);
  ClientRows result;
  for (const Client& c : all_clients(chosen)) {
    if (!keep && result.rows.size() >= limit) {  // past the page: counted, not described
      ++result.matched;
      continue;
    }
    Json row = describe_client(chosen, c);
    if (keep && !keep(row)) continue;
    ++result.matched;
    if (result.rows.size() < limit) result.rows.push_back(std::move(row));
  }
  return result;
}

namespace {

Json cmd_send(const CommandScope& ctx, const Json& req) {
  const std::string* text = string_field(req, "text");
  if (auto bad = text_problem(text, "text")) return error_reply(*bad);
  auto to = req.find("to");
  if (to == req.end()) return error_reply("missing \"to\" (a client id or an address)");
  std::string error;
  std::optional<ClientRef> who = client_ref_field(*to, &error);
  if (!who) return error_reply(error);
  Json not_found;
  std::optional<Client> client = find_client(ctx, *who, not_found);
  if (!client) return not_found;
  Engine& engine = *ctx.engines[client->engine];
  uint64_t id = client->snapshot.id.value();
  if (!engine.send(client->snapshot.id, operator_hooks(engine.service()).operator_line(*text)))
    return no_such_client(std::to_string(id));
  return Json{{"ok", true}, {"sent_to", Json::array({id})}};
}

Json cmd_kick(const CommandScope& ctx, const Json& req) {
  auto it = req.find("id");
  if (it == req.end()) return error_reply("missing \"id\" (a client id)");
  std::string error;
  std::optional<uint64_t> kick_id = client_id_field(*it, "id", &error);
  if (!kick_id) return error_reply(error);
  std::string reason;
  if (const std::string* r = string_field(req, "reason")) reason = *r;
  if (!reason.empty())
    if (auto bad = text_problem(&reason, "reason")) return error_reply(*bad);
  Json not_found;
  std::optional<Client> client = find_client(ctx, ClientRef(*kick_id), not_found);
  if (!client) return not_found;
  Engine& engine = *ctx.engines[client->engine];
  uint64_t id = client->snapshot.id.value();
  if (!engine.close_gracefully(
          client->snapshot.id, operator_hooks(engine.service()).kick_line(reason),
          reason.empty() ? "kicked by operator" : "kicked by operator: " + reason, kLinger))
    return no_such_client(std::to_string(id));
  return Json{{"ok", true}, {"kicked", id}};
}

Json cmd_broadcast(const CommandScope& ctx, const Json& req) {
  const std::string* text = string_field(req, "text");
  if (auto bad = text_problem(text, "text")) return error_reply(*bad);
  const std::string* only = string_field(req, "service");
  if (req.contains("service") && !only) return error_reply("\"service\" must be a string");
  const std::string* room = string_field(req, "room");
  if (req.contains("room") && !room) return error_reply("\"room\" must be a string");
  bool any_service = false;
  bool any_room = false;
  size_t recipients = 0;
  for (size_t e = 0; e < ctx.engines.size(); ++e) {
    Engine& engine = *ctx.engines[e];
    if (only && *only != engine.service().name()) continue;
    any_service = true;
    const OperatorHooks& hooks = operator_hooks(engine.service());
    std::vector<ConnectionId> ids;
    if (room) {
      std::optional<std::vector<ConnectionId>> members = hooks.room_members(*room);
      if (!members || members->empty()) continue;
      any_room = true;
      ids = std::move(*members);
    } else {
      engine.visit([&](const ClientSnapshot& c) { ids.push_back(c.id); });
    }
    recipients += engine.send_many(ids, hooks.operator_line(*text));
  }
  if (only && !any_service) return error_reply("no such service " + quote(*only));
  if (room && !any_room) return error_reply("no such room " + quote(*room));
  return Json{{"ok", true}, {"recipients", recipients}};
}

}  // namespace

std::string read_proc_file(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text;
  char buf[4096];
  ssize_t n;
  while (text.size() < (64 << 10) && (n = ::read(fd, buf, sizeof buf)) > 0)
    text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return text;
}

std::optional<FoundClient> find_client(const CommandScope& scope, const ClientRef& who,
                                       std::string& error) {
  const uint64_t* id = std::get_if<uint64_t>(&who);
  const std::string* address = std::get_if<std::string>(&who);
  std::vector<FoundClient> found;
  for (size_t e = 0; e < scope.engines.size(); ++e)
    scope.engines[e]->visit([&](const ClientSnapshot& s) {
      if (id ? s.id.value() == *id : s.peer.to_string() == *address) found.push_back({e, s});
    });
  if (found.size() == 1) return found.front();
  if (found.size() > 1)
    error = "address " + quote(*address) + " matches " + std::to_string(found.size()) +
            " clients: use an id";
  else
    error = "no such client " + quote(id ? std::to_string(*id) : *address);
  return std::nullopt;
}

Json run_command(const CommandScope& ctx, const Json& req) {
  const std::string* cmd = req.is_object() ? string_field(req, "cmd") : nullptr;
  if (req.is_discarded()) return error_reply("malformed JSON");
  if (!req.is_object()) return error_reply("a request is a JSON object");
  if (!cmd) return error_reply("missing \"cmd\"");
  if (*cmd == "list") return cmd_list(ctx);
  if (*cmd == "send") return cmd_send(ctx, req);
  if (*cmd == "broadcast") return cmd_broadcast(ctx, req);
  if (*cmd == "kick") return cmd_kick(ctx, req);
  if (*cmd == "stats") return stats_reply(ctx);
  return error_reply("unknown cmd " + quote(*cmd) + " (list, send, broadcast, kick or stats)");
}

void handle_request(Context& ctx, TcpConnection& c, AdminConn& st, const std::string& line) {
  if (!ctx.options.endpoint.is_unix()) {  // TCP: every request carries the token
    // Checked before the request is parsed: an unauthenticated client's bytes build no JSON.
    std::optional<std::string> token = request_token(line);
    if (!token || !ctx.options.token || !constant_time_equal(*token, *ctx.options.token)) {
      st.closing = true;
      finish_with_last_line(c, error_line("unauthorized"), "admin: unauthorized", kLinger);
      return;
    }
  }
  Json req = Json::parse(line, nullptr, false);
  const std::string* cmd = req.is_object() ? string_field(req, "cmd") : nullptr;
  if (cmd) {
    // Sessions (attach, say, detach, watch) belong to this admin connection; the rest is
    // run_command.
    if (*cmd == "watch") {
      std::string watch_reply = cmd_watch(ctx, c, st, req);
      if (!watch_reply.empty()) c.send(watch_reply);
      return;
    }
    if (std::optional<std::string> session_reply = session_request(ctx, c, st, *cmd, req)) {
      if (!session_reply->empty()) c.send(*session_reply);
      return;
    }
  }
  if (cluster_request(ctx, c, st, req)) return;
  Json reply = run_command(ctx, req);
  if (cmd && !reply.value("ok", false) &&
      reply.value("error", std::string()).starts_with("unknown cmd "))
    reply = error_reply("unknown cmd " + quote(*cmd) +
                        " (list, send, broadcast, kick, stats, attach, say, detach or watch)");
  c.send(to_line(reply));
}

}  // namespace keel::admin
