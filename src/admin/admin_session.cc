// The admin endpoint's session requests (docs/protocols.md, "Admin protocol", "Sessions"):
//   attach  turns the admin connection into a stream of one hub client's bytes (EventStream)
//   say     sends the operator's message to the attached client, framed as the hub frames
//   detach  ends the session; the client is parked again
// A session also ends when the client leaves (a "closed" event) or the admin connection closes.
// On a cluster node, attach "NODE/ID" reaches a client of another node: the session runs through
// ClusterOps (cluster::OperatorRelay), and that node answers with attach_for_remote().
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

// The hub client req["to"] names; nullopt with error set when there is none or it is not a
// hub's.
struct HubClient {
  size_t engine;
  ClientSnapshot snapshot;
  Attachable* hub;
};
std::optional<HubClient> hub_client(const CommandScope& scope, const Json& req,
                                    std::string& error) {
  auto to = req.find("to");
  if (to == req.end()) {
    error = "missing \"to\" (a client id or an address)";
    return std::nullopt;
  }
  std::optional<ClientRef> who = client_ref_field(*to, &error);
  if (!who) return std::nullopt;
  std::optional<FoundClient> target = find_client(scope, *who, error);
  if (!target) return std::nullopt;
  Engine& engine = *scope.engines[target->engine];
  Attachable* hub = attachable(engine.service());
  if (!hub) {
    error = "client " + std::to_string(target->snapshot.id.value()) + " is " +
            article(engine.service().name()) +
            " client, not a hub client: only hub clients can be attached";
    return std::nullopt;
  }
  return HubClient{target->engine, std::move(target->snapshot), hub};
}

// Attaches client to stream: the attach reply.
Json attach_to(const CommandScope& scope, const HubClient& client,
               std::shared_ptr<OperatorStream> stream) {
  std::string refusal;
  std::optional<Attachable::Attached> attached =
      client.hub->attach(client.snapshot.id, std::move(stream), &refusal);
  if (!attached) return error_reply(refusal);
  return Json{{"ok", true},
              {"attached", client.snapshot.id.value()},
              {"service", scope.engines[client.engine]->service().name()},
              {"peer", client.snapshot.peer.to_string()},
              {"held", attached->held_bytes},
              {"framing", client.hub->framing_name()}};
}

// One say request to the attached client: the reply.
Json say_to(Engine& engine, ConnectionId client, const Json& req) {
  Attachable* hub = attachable(engine.service());
  const std::string* text = string_of(req, "text");
  const std::string* encoded = string_of(req, "base64");
  if ((text == nullptr) == (encoded == nullptr))
    return error_reply("say needs one of \"text\" (a string) or \"base64\" (bytes, base64)");
  std::string message;
  if (text) {
    message = *text;
  } else if (auto bytes = base64_decode(*encoded)) {
    message = std::move(*bytes);
  } else {
    return error_reply("\"base64\" is not valid base64");
  }
  const std::string framing = hub->framing_name();
  if (framing == "lines" && message.find_first_of("\r\n") != std::string::npos)
    return error_reply("the hub frames by lines: a message must be one line");
  if (framing != "binary" && message.size() > (16u << 20)) return error_reply("message too long");
  if (!engine.send(client, hub->frame_message(message)))
    return error_reply("client " + std::to_string(client.value()) + " is gone");
  return Json{{"ok", true}, {"said", message.size()}};
}

// The reply that came from another node (or why none did), to the admin connection `id`, which
// then takes requests again. on_reply sees it first, on the admin loop.
ClusterOps::Done reply_from_node(Context& ctx, ConnectionId id, const std::string& node,
                                 std::function<void(AdminConn&, Json&)> on_reply) {
  return [ctx = &ctx, id, node, on_reply = std::move(on_reply)](ClusterOps::Replies replies,
                                                                std::vector<std::string>) mutable {
    Json reply = !replies.empty()
                     ? std::move(replies.front().second)
                     : error_reply("node " + node + " did not answer (is it in the cluster?)");
    if (!reply.is_object()) reply = error_reply("node " + node + " sent a reply that is not JSON");
    ctx->loop->post([ctx, id, reply = std::move(reply), on_reply = std::move(on_reply)]() mutable {
      TcpConnection* conn = ctx->loop->find(id);
      auto it = ctx->conns.find(id.value());
      if (conn == nullptr || it == ctx->conns.end()) return;
      it->second.waiting_for_cluster = false;
      on_reply(it->second, reply);
      conn->send(to_line(reply));
      pump(*ctx, *conn, it->second);
    });
  };
}

std::string cmd_attach(Context& ctx, TcpConnection& c, AdminConn& st, const Json& req) {
  if (st.session)
    return error_line("already attached to client " + std::to_string(st.session->client.value()) +
                      ": detach first");
  std::string name;
  if (req.contains("operator")) {
    const std::string* given = string_of(req, "operator");
    if (!given || !valid_operator_name(*given))
      return error_line(
          "\"operator\" must be a name of up to 64 letters, digits, '_', '-', '.' "
          "or '@'");
    name = *given;
  }
  // "n2/17": a client of node n2 (this node's own is as its id).
  Json local = req;
  std::optional<std::pair<std::string, uint64_t>> remote;
  if (auto to = req.find("to"); to != req.end() && to->is_string())
    remote = parse_node_client_id(to->get_ref<const std::string&>());
  if (remote && !ctx.cluster) return error_line("a NODE/ID client is for cluster nodes (--redis)");
  if (remote && remote->first == ctx.cluster->node) {
    local["to"] = remote->second;
    remote.reset();
  }
  std::string error;
  std::optional<HubClient> target;
  if (!remote && !(target = hub_client(ctx, local, error))) return error_line(error);
  auto stream = std::make_shared<EventStream>(c, describe_operator(c, name));
  // The producer ended the session (the client left): back to plain requests.
  stream->on_ended([ctx = &ctx, admin_id = c.id().value(), raw = stream.get()] {
    auto it = ctx->conns.find(admin_id);
    if (it != ctx->conns.end() && it->second.session && it->second.session->stream.get() == raw)
      it->second.session.reset();
  });
  if (remote) {
    const std::string node = remote->first;
    const uint64_t id = remote->second;
    st.session = StreamSession{stream, "attach", 0, ConnectionId::from_value(id), node};
    st.waiting_for_cluster = true;
    Json request{{"cmd", "attach"}, {"to", id}};
    ctx.cluster->attach(
        node, request, stream->holder() + " on node " + ctx.cluster->node, stream,
        reply_from_node(ctx, c.id(), node, [raw = stream.get(), node](AdminConn& st, Json& reply) {
          const bool mine = st.session && st.session->stream.get() == raw;
          if (reply_ok(reply)) {
            reply["node"] = node;
          } else if (mine) {
            st.session.reset();  // refused, or no answer: no session
          }
        }));
    return {};  // the reply comes from the node, and the session's events after it
  }
  Json reply = attach_to(ctx, *target, stream);
  if (!reply_ok(reply)) return to_line(reply);
  st.session = StreamSession{stream, "attach", target->engine, target->snapshot.id, {}};
  // Written now: the held bytes and everything after were posted, so they follow this reply.
  return to_line(reply);
}

std::string cmd_say(Context& ctx, TcpConnection& c, AdminConn& st, const Json& req) {
  if (!st.session || st.session->kind != "attach")
    return error_line("not attached: attach to a client first");
  if (!st.session->node.empty()) {
    st.waiting_for_cluster = true;
    ctx.cluster->session(st.session->stream.get(), req,
                         reply_from_node(ctx, c.id(), st.session->node, [](AdminConn&, Json&) {}));
    return {};
  }
  return to_line(say_to(*ctx.engines[st.session->engine], st.session->client, req));
}

std::string cmd_detach(Context& ctx, TcpConnection& c, AdminConn& st) {
  if (!st.session) return error_line("not attached");
  std::shared_ptr<EventStream> stream = std::move(st.session->stream);
  const uint64_t id = st.session->client.value();
  const std::string node = std::move(st.session->node);
  st.session.reset();
  stream->leave();  // the producer posts nothing from here on
  if (!node.empty()) {
    // The leave went to the client's node over the backplane: "detached" once that node has
    // read it, so that a line the client sends after the operator sees it is held there, not
    // forwarded to this session, which is gone.
    st.waiting_for_cluster = true;
    ctx.cluster->sync(node, reply_from_node(ctx, c.id(), node, [id, node](AdminConn&, Json& reply) {
                        const bool confirmed = reply_ok(reply);
                        reply = Json{{"ok", true}, {"detached", id}};
                        if (!confirmed)
                          reply["unconfirmed"] =
                              "node " + node +
                              " did not confirm in time: what its client sent meanwhile may "
                              "have been lost";
                      }));
    return {};
  }
  // After every event posted before the detach: a posted task runs after those.
  c.loop().post([&loop = c.loop(), admin_id = c.id(), id] {
    if (TcpConnection* conn = loop.find(admin_id))
      conn->send(to_line(Json{{"ok", true}, {"detached", id}}));
  });
  return {};
}

}  // namespace

Json attach_for_remote(const CommandScope& scope, const Json& req,
                       std::shared_ptr<OperatorStream> stream,
                       std::function<Json(const Json& req)>* say) {
  std::string error;
  std::optional<HubClient> target = hub_client(scope, req, error);
  if (!target) return error_reply(error);
  Json reply = attach_to(scope, *target, std::move(stream));
  if (reply_ok(reply))
    *say = [engine = scope.engines[target->engine], client = target->snapshot.id](const Json& r) {
      return say_to(*engine, client, r);
    };
  return reply;
}

std::optional<std::string> session_request(Context& ctx, TcpConnection& c, AdminConn& st,
                                           const std::string& cmd, const Json& req) {
  if (cmd == "attach") return cmd_attach(ctx, c, st, req);
  if (cmd == "say") return cmd_say(ctx, c, st, req);
  if (cmd == "detach") return cmd_detach(ctx, c, st);
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
