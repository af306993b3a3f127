// The HTTP API: /healthz, /readyz, /metrics, /api/stats, /api/clients and the state-changing
// POST /api/send, /api/broadcast, /api/kick (docs/protocols.md, "HTTP API"). Every answer about
// the services comes from admin::run_command, so `keel ctl` and HTTP say the same.
#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cmath>

#include "admin/admin_protocol.h"
#include "services/http/api.h"
#include "services/http/metrics.h"

namespace keel::http {
namespace {

constexpr size_t kDefaultClientLimit = 1000;
constexpr size_t kMaxClientLimit = 100000;

}  // namespace

Response json_response(int status, const Json& body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  r.body += '\n';
  return r;
}

Response json_error(int status, const std::string& message) {
  return json_response(status, Json{{"ok", false}, {"error", message}});
}

namespace {

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// At most 64 bytes of a client's value, for error messages.
std::string quote(std::string_view value) {
  return std::string(value.substr(0, 64)) + (value.size() > 64 ? "..." : "");
}

bool bearer_ok(const Api& api, const Request& request) {
  const std::string* auth = request.header("authorization");
  if (!auth || auth->size() < 7 || lower(auth->substr(0, 7)) != "bearer ") return false;
  std::string_view given = std::string_view(*auth).substr(7);
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  return !api.token.empty() && admin::constant_time_equal(given, api.token);
}

Response unauthorized(const std::string& why) {
  Response r = json_error(401, why);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"keel\"");
  return r;
}

}  // namespace

// A state-changing request must come from this endpoint's own page (or a non-browser client)
// and carry the token. Browsers send Origin on every POST and Sec-Fetch-Site on modern ones.
std::optional<Response> write_denied(const Api& api, const Request& request) {
  const std::string* site = request.header("sec-fetch-site");
  if (site && *site != "same-origin" && *site != "none")
    return json_error(403, "cross-site request refused (Sec-Fetch-Site: " + quote(*site) + ")");
  const std::string* origin = request.header("origin");
  const std::string* host = request.header("host");
  if (origin && (!host || lower(*origin) != "http://" + lower(*host)))
    return json_error(
        403, "cross-site request refused (Origin " + quote(*origin) + " is not this endpoint)");
  if (!bearer_ok(api, request))
    return unauthorized("missing or wrong token (Authorization: Bearer TOKEN)");
  const std::string* type = request.header("content-type");
  if (!type || lower(type->substr(0, type->find(';'))) != "application/json")
    return json_error(415, "the body must be JSON (Content-Type: application/json)");
  return std::nullopt;
}

namespace {

int status_of(const Json& reply) {
  if (reply.value("ok", false)) return 200;
  std::string error = reply.value("error", std::string());
  return error.starts_with("no such ") ? 404 : 400;
}

// POST /api/CMD: the body is the admin request without "cmd" (or with the same one).
Router::Handler admin_post(Api& api, std::string cmd) {
  return [&api, cmd](const Request& request) {
    if (auto denied = write_denied(api, request)) return *denied;
    Json body = Json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return json_error(400, "the body must be a JSON object");
    auto given = body.find("cmd");
    if (given != body.end() && *given != cmd)
      return json_error(400, "\"cmd\" does not match the route");
    body["cmd"] = cmd;
    Json reply = admin::run_command(api.scope, body);
    return json_response(status_of(reply), reply);
  };
}

// Reads need no token on loopback; elsewhere they need it too.
Router::Handler reader(Api& api, std::function<Response(const Request&)> fn) {
  return [&api, fn = std::move(fn)](const Request& request) {
    Response denied;
    if (!may_read(api, request, &denied)) return denied;
    return fn(request);
  };
}

bool contains_text(const Json& row, const std::string& needle) {
  for (const auto& [key, value] : row.items()) {
    std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    if (text.find(needle) != std::string::npos) return true;
  }
  return false;
}

Response clients(Api& api, const Request& request) {
  std::optional<std::string> service = query_param(request.query, "service");
  std::optional<std::string> needle = query_param(request.query, "q");
  size_t limit = kDefaultClientLimit;
  if (std::optional<std::string> text = query_param(request.query, "limit")) {
    std::optional<uint64_t> n = admin::parse_client_id(*text);
    if (!n || *n > kMaxClientLimit)
      return json_error(400, "limit must be a number from 0 to " + std::to_string(kMaxClientLimit));
    limit = *n;
  }
  std::function<bool(const Json&)> keep;
  if (needle && !needle->empty())
    keep = [&needle](const Json& row) { return contains_text(row, *needle); };
  admin::ClientRows page = admin::list_clients(api.scope, service, keep, limit);
  bool truncated = page.matched > page.rows.size();
  return json_response(200, Json{{"ok", true},
                                 {"clients", std::move(page.rows)},
                                 {"total", page.matched},
                                 {"truncated", truncated}});
}

}  // namespace

std::optional<std::string> random_hex128() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : bytes) {
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  return hex;
}

bool may_read(const Api& api, const Request& request, Response* denied) {
  if (!api.token_for_reads || bearer_ok(api, request)) return true;
  // EventSource cannot send headers: an event stream may carry the token in its URL.
  if (request.path == "/api/events") {
    std::optional<std::string> token = query_param(request.query, "token");
    if (token && admin::constant_time_equal(*token, api.token)) return true;
  }
  *denied = unauthorized("this endpoint is not on loopback: every request needs the token");
  return false;
}

std::string stats_event_json(const Api& api) {
  Json stats = admin::run_command(api.scope, Json{{"cmd", "stats"}});
  auto now = std::chrono::system_clock::now().time_since_epoch();
  double time_s = std::round(std::chrono::duration<double>(now).count() * 1000) / 1000;
  Json event{{"time", time_s}};
  for (auto& [key, value] : stats.items())
    if (key != "ok") event[key] = value;
  return event.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void add_api_routes(Router& router, Api& api) {
  router.add("GET", "/healthz", [](const Request&) { return text_response(200, "ok"); });
  router.add("GET", "/readyz", [&api](const Request&) {
    switch (api.phase.load()) {
      case Phase::ready: return text_response(200, "ready");
      case Phase::draining: return text_response(503, "draining");
      case Phase::starting: break;
    }
    return text_response(503, "starting");
  });
  router.add("GET", "/metrics", reader(api, [&api](const Request&) {
               Response r;
               r.content_type = "text/plain; version=0.0.4; charset=utf-8";
               r.body = metrics_text(api);
               return r;
             }));
  router.add("GET", "/api/stats", reader(api, [&api](const Request&) {
               return json_response(200, admin::run_command(api.scope, Json{{"cmd", "stats"}}));
             }));
  router.add("GET", "/api/clients",
             reader(api, [&api](const Request& request) { return clients(api, request); }));
  router.add("POST", "/api/send", admin_post(api, "send"));
  router.add("POST", "/api/broadcast", admin_post(api, "broadcast"));
  router.add("POST", "/api/kick", admin_post(api, "kick"));
}

}  // namespace keel::http
