// The admin endpoint's session requests (docs/protocols.md, "Admin protocol", "Sessions"):
//   attach  turns the admin connection into a stream of one hub client's bytes (EventStream)
//   say     sends the operator's message to the attached client, framed as the hub frames
//   detach  ends the session; the client is parked again
// A session also ends when the client leaves (a "closed" event) or the admin connection closes.
#include <algorithm>

#include "admin/admin_context.h"
#include "admin/admin_fields.h"
#include "admin/base64.h"
#include "admin/event_stream.h"
#include "keel/attachable.h"

namespace keel::admin {
namespace {

constexpr size_t kMaxOperatorName = 64;

const std::string* string_of(const Json& req, const char* key) {
  auto it = req.find(key);
  return it != req.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

// An operator's name as it may appear in another operator's refusal and in `keel ctl list`.
bool valid_operator_name(const std::string& name) {
  return name.size() <= kMaxOperatorName && std::all_of(name.begin(), name.end(), [](char ch) {
           return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.' || ch == '@';
         });
}

// "an echo", "a chat".
std::string article(std::string_view word) {
  bool vowel = !word.empty() && std::string_view("aeiou").find(word[0]) != std::string_view::npos;
  return (vowel ? "an " : "a ") + std::string(word);
}

std::string cmd_attach(Context& ctx, TcpConnection& c, AdminConn& st, const Json& req) {
  if (st.session)
    return error_line("already attached to client " + std::to_string(st.session->client.value()) +
                      ": detach first");
  auto to = req.find("to");
  if (to == req.end()) return error_line("missing \"to\" (a client id or an address)");
  std::string error;
  std::optional<ClientRef> who = client_ref_field(*to, &error);
  if (!who) return error_line(error);
  std::string name;
  if (req.contains("operator")) {
    const std::string* given = string_of(req, "operator");
    if (!given || !valid_operator_name(*given))
      return error_line(
          "\"operator\" must be a name of up to 64 letters, digits, '_', '-', '.' "
          "or '@'");
    name = *given;
  }
  std::optional<FoundClient> target = find_client(ctx, *who, error);
  if (!target) return error_line(error);
  Engine& engine = *ctx.engines[target->engine];
  const uint64_t id = target->snapshot.id.value();
  Attachable* hub = attachable(engine.service());
  if (!hub)
    return error_line("client " + std::to_string(id) + " is " + article(engine.service().name()) +
                      " client, not a hub client: only hub clients can be attached");
  auto stream = std::make_shared<EventStream>(c, describe_operator(c, name));
  // The producer ended the session (the client left): back to plain requests.
  stream->on_ended([ctx = &ctx, admin_id = c.id().value(), raw = stream.get()] {
    auto it = ctx->conns.find(admin_id);
    if (it != ctx->conns.end() && it->second.session && it->second.session->stream.get() == raw)
      it->second.session.reset();
  });
  std::string refusal;
  std::optional<Attachable::Attached> attached = hub->attach(target->snapshot.id, stream, &refusal);
  if (!attached) return error_line(refusal);
  st.session = StreamSession{stream, "attach", target->engine, target->snapshot.id};
  // Written now: the held bytes and everything after were posted, so they follow this reply.
  return to_line(Json{{"ok", true},
                      {"attached", id},
                      {"service", engine.service().name()},
                      {"peer", target->snapshot.peer.to_string()},
                      {"held", attached->held_bytes},
                      {"framing", hub->framing_name()}});
}

std::string cmd_say(Context& ctx, AdminConn& st, const Json& req) {
  if (!st.session || st.session->kind != "attach")
    return error_line("not attached: attach to a client first");
  Engine& engine = *ctx.engines[st.session->engine];
  Attachable* hub = attachable(engine.service());
  const std::string* text = string_of(req, "text");
  const std::string* encoded = string_of(req, "base64");
  if ((text == nullptr) == (encoded == nullptr))
    return error_line("say needs one of \"text\" (a string) or \"base64\" (bytes, base64)");
  std::string message;
  if (text) {
    message = *text;
  } else if (auto bytes = base64_decode(*encoded)) {
    message = std::move(*bytes);
  } else {
    return error_line("\"base64\" is not valid base64");
  }
  const std::string framing = hub->framing_name();
  if (framing == "lines" && message.find_first_of("\r\n") != std::string::npos)
    return error_line("the hub frames by lines: a message must be one line");
  if (framing != "binary" && message.size() > (16u << 20)) return error_line("message too long");
  const uint64_t id = st.session->client.value();
  if (!engine.send(st.session->client, hub->frame_message(message)))
    return error_line("client " + std::to_string(id) + " is gone");
  return to_line(Json{{"ok", true}, {"said", message.size()}});
}

std::string cmd_detach(TcpConnection& c, AdminConn& st) {
  if (!st.session) return error_line("not attached");
  std::shared_ptr<EventStream> stream = std::move(st.session->stream);
  const uint64_t id = st.session->client.value();
  st.session.reset();
  stream->leave();  // the producer posts nothing from here on
  // After every event posted before the detach: a posted task runs after those.
  c.loop().post([&loop = c.loop(), admin_id = c.id(), id] {
    if (TcpConnection* conn = loop.find(admin_id))
      conn->send(to_line(Json{{"ok", true}, {"detached", id}}));
  });
  return {};
}

}  // namespace

std::optional<std::string> session_request(Context& ctx, TcpConnection& c, AdminConn& st,
                                           const std::string& cmd, const Json& req) {
  if (cmd == "attach") return cmd_attach(ctx, c, st, req);
  if (cmd == "say") return cmd_say(ctx, st, req);
  if (cmd == "detach") return cmd_detach(c, st);
  return std::nullopt;
}

void session_output_drained(AdminConn& st) {
  if (st.session) st.session->stream->output_drained();
}

void session_connection_closed(AdminConn& st) {
  if (!st.session) return;
  st.session->stream->connection_closed();
  st.session.reset();
}

}  // namespace keel::admin
