#include "services/http/attach_sessions.h"

#include "admin/admin_fields.h"
#include "admin/admin_protocol.h"
#include "keel/attachable.h"
#include "keel/engine/engine.h"
#include "services/http/attach_stream.h"

namespace keel::http {
namespace {

constexpr std::chrono::seconds kConnectWithin{10};
constexpr size_t kMaxMessageBytes = 64 * 1024;

Json body_of(const Request& request) {
  Json body = Json::parse(request.body, nullptr, false);
  return body.is_object() ? body : Json();
}

const std::string* string_of(const Json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

}  // namespace

AttachSessions::~AttachSessions() {
  for (auto& [id, session] : sessions_) session->leave("keel is stopping");
}

void AttachSessions::add_routes(Router& router) {
  router.add("POST", "/api/attach", [this](const Request& r) { return start(r); });
  router.add("POST", "/api/attach/say", [this](const Request& r) { return say(r); });
  router.add("POST", "/api/attach/detach", [this](const Request& r) { return detach(r); });
  router.add("GET", "/api/attach/events", [](const Request&) {
    Response r;
    r.event_stream = true;  // answered by open_events
    return r;
  });
}

Response AttachSessions::start(const Request& request) {
  if (auto denied = write_denied(api_, request)) return *denied;
  Json body = body_of(request);
  if (body.is_null()) return json_error(400, "the body must be a JSON object");
  auto to = body.find("to");
  if (to == body.end()) to = body.find("id");
  if (to == body.end()) return json_error(400, "missing \"to\" (a client id or an address)");
  std::string error;
  std::optional<admin::ClientRef> who = admin::client_ref_field(*to, &error);
  if (!who) return json_error(400, error);
  if (sessions_.size() >= kMaxSessions)
    return json_error(503, "too many attach sessions open (" + std::to_string(kMaxSessions) + ")");

  const uint64_t* want_id = std::get_if<uint64_t>(&*who);
  const std::string* want_peer = std::get_if<std::string>(&*who);
  Engine* engine = nullptr;
  ClientSnapshot found;
  size_t matches = 0;
  for (Engine* e : api_.scope.engines)
    e->visit([&](const ClientSnapshot& s) {
      if (want_id ? s.id.value() == *want_id : s.peer.to_string() == *want_peer) {
        ++matches;
        engine = e;
        found = s;
      }
    });
  if (matches == 0)
    return json_error(404, "no such client " + (want_id ? std::to_string(*want_id) : *want_peer));
  if (matches > 1)
    return json_error(400, "address " + *want_peer + " matches " + std::to_string(matches) +
                               " clients: use an id");
  const uint64_t id = found.id.value();
  Attachable* hub = attachable(engine->service());
  if (!hub)
    return json_error(400, "client " + std::to_string(id) + " is a " + engine->service().name() +
                               " client, not a hub client: only hub clients can be attached");
  std::optional<std::string> session = random_hex128();
  if (!session) return json_error(500, "no random bytes for a session id");

  EventLoop* loop = EventLoop::current();
  std::string holder =
      "the dashboard since " + admin::utc_timestamp(std::chrono::system_clock::now());
  auto stream = std::make_shared<HttpAttachStream>(
      *loop, *session, holder, *engine, found.id,
      [this, alive = std::weak_ptr<int>(alive_), sid = *session] {
        if (alive.lock()) forget(sid);
      });
  std::string refusal;
  std::optional<Attachable::Attached> attached = hub->attach(found.id, stream, &refusal);
  if (!attached) return json_error(409, refusal);
  sessions_[*session] = stream;
  loop->run_after(kConnectWithin, [weak = std::weak_ptr<HttpAttachStream>(stream)] {
    if (auto s = weak.lock(); s && !s->connected())
      s->leave("the dashboard's event stream did not connect within 10 s");
  });
  return json_response(200, Json{{"ok", true},
                                 {"session", *session},
                                 {"attached", id},
                                 {"service", engine->service().name()},
                                 {"peer", found.peer.to_string()},
                                 {"held", attached->held_bytes},
                                 {"framing", hub->framing_name()}});
}

std::shared_ptr<HttpAttachStream> AttachSessions::find(const Json& body, Response* error) {
  const std::string* session = string_of(body, "session");
  if (!session) {
    *error = json_error(400, "missing \"session\" (from POST /api/attach)");
    return nullptr;
  }
  auto it = sessions_.find(*session);
  if (it == sessions_.end()) {
    *error = json_error(404, "no such attach session (it ended, or it never was)");
    return nullptr;
  }
  return it->second;
}

Response AttachSessions::say(const Request& request) {
  if (auto denied = write_denied(api_, request)) return *denied;
  Json body = body_of(request);
  Response error;
  std::shared_ptr<HttpAttachStream> s = find(body, &error);
  if (!s) return error;
  const std::string* text = string_of(body, "text");
  if (!text) return json_error(400, "missing \"text\"");
  Attachable* hub = attachable(s->engine().service());
  if (std::string(hub->framing_name()) == "lines" &&
      text->find_first_of("\r\n") != std::string::npos)
    return json_error(400, "the hub frames by lines: a message must be one line");
  if (text->size() > kMaxMessageBytes) return json_error(413, "message too long");
  if (!s->open()) return json_error(410, "the session has ended");
  if (!s->engine().send(s->client(), hub->frame_message(*text)))
    return json_error(410, "client " + std::to_string(s->client().value()) + " is gone");
  return json_response(200, Json{{"ok", true}, {"said", text->size()}});
}

Response AttachSessions::detach(const Request& request) {
  if (auto denied = write_denied(api_, request)) return *denied;
  Response error;
  std::shared_ptr<HttpAttachStream> s = find(body_of(request), &error);
  if (!s) return error;
  s->leave("detached by the operator");
  return json_response(200, Json{{"ok", true}, {"detached", s->client().value()}});
}

std::optional<Response> AttachSessions::open_events(Server& server, ConnectionId id,
                                                    const Request& request,
                                                    const std::string& head) {
  std::optional<std::string> session = query_param(request.query, "session");
  auto it = session ? sessions_.find(*session) : sessions_.end();
  if (it == sessions_.end())
    return json_error(404, "no such attach session (it ended, or it never was)");
  if (it->second->connected()) return json_error(409, "the session's event stream is open already");
  server.send(id, head);
  it->second->connect(server, id);  // what the client sent so far follows the head
  return std::nullopt;
}

void AttachSessions::connection_closed(ConnectionId id) {
  for (auto& [sid, s] : sessions_)
    if (s->connected() && s->stream_id() == id) {
      s->stream_gone();
      return;
    }
}

void AttachSessions::forget(const std::string& session) {
  sessions_.erase(session);
}

}  // namespace keel::http
