// Operator requests that reach other nodes of a cluster (docs/protocols.md, "Admin protocol"):
// `list` and `stats` with "cluster":true gather every node's answer; `send` and `kick` to a
// client id written NODE/ID run on that node. The request goes out through ClusterOps (the
// backplane's operator relay); the reply comes back on another thread and is posted to the
// admin loop, and the connection takes no other request until then, so replies stay in order.
#include <string>

#include "admin/admin_context.h"

namespace keel::admin {
namespace {

// "n2/17": the node and the id; nullopt for anything else.
std::optional<std::pair<std::string, uint64_t>> node_and_id(const Json& value) {
  if (!value.is_string()) return std::nullopt;
  return parse_node_client_id(value.get_ref<const std::string&>());
}

// list: every node's clients, each row with its node.
Json merged_list(const std::string& self, Json local, const ClusterOps::Replies& replies,
                 const std::vector<std::string>& missing) {
  Json clients = Json::array();
  Json nodes = Json::array({self});
  auto add = [&](const std::string& node, Json& reply) {
    for (Json& row : reply["clients"]) {
      if (!row.is_object()) continue;  // another node's reply: any shape
      row["node"] = node;
      clients.push_back(std::move(row));
    }
  };
  add(self, local);
  for (auto [node, reply] : replies) {
    if (!reply_ok(reply) || !reply["clients"].is_array()) continue;
    nodes.push_back(node);
    add(node, reply);
  }
  return Json{{"ok", true},
              {"clients", std::move(clients)},
              {"nodes", std::move(nodes)},
              {"missing", missing}};
}

// stats: each node's reply, and the sums of what adds up.
Json merged_stats(const std::string& self, Json local, const ClusterOps::Replies& replies,
                  const std::vector<std::string>& missing) {
  Json nodes = Json::array();
  Json totals{{"connections", 0}, {"accepted", 0}, {"messages_in", 0}, {"messages_out", 0}};
  auto add = [&](const std::string& node, Json& reply) {
    for (const Json& s : reply["services"])
      for (auto& [key, sum] : totals.items())
        if (s.contains(key) && s[key].is_number_unsigned())
          sum = sum.get<uint64_t>() + s[key].get<uint64_t>();
    reply["node"] = node;
    nodes.push_back(std::move(reply));
  };
  add(self, local);
  for (auto [node, reply] : replies)
    if (reply_ok(reply) && reply["services"].is_array()) add(node, reply);
  return Json{{"ok", true},
              {"nodes", std::move(nodes)},
              {"totals", std::move(totals)},
              {"missing", missing}};
}

}  // namespace

bool cluster_request(Context& ctx, TcpConnection& c, AdminConn& st, const Json& req) {
  if (!req.is_object()) return false;
  const std::string cmd = req.value("cmd", std::string());
  const bool gather = (cmd == "list" || cmd == "stats") && req.value("cluster", false) == true;
  std::optional<std::pair<std::string, uint64_t>> routed;
  if (cmd == "send" && req.contains("to")) routed = node_and_id(req["to"]);
  if (cmd == "kick" && req.contains("id")) routed = node_and_id(req["id"]);
  if (!gather && !routed) return false;
  if (!ctx.cluster) {
    c.send(to_line(error_reply(gather ? "not a cluster node: this keel runs without --redis"
                                      : "a NODE/ID client is for cluster nodes (--redis)")));
    return true;
  }
  Json request = req;
  request.erase("cluster");
  if (routed) request[cmd == "send" ? "to" : "id"] = routed->second;
  if (routed && routed->first == ctx.cluster->node) {  // this node's own client
    c.send(to_line(run_command(ctx, request)));
    return true;
  }
  Json local = gather ? run_command(ctx, request) : Json();
  st.waiting_for_cluster = true;
  const ConnectionId id = c.id();
  Context* context = &ctx;
  const std::string self = ctx.cluster->node;
  const std::string target = routed ? routed->first : std::string();
  ctx.cluster->ask(
      target, request,
      [context, id, self, cmd, gather, target, local = std::move(local)](
          ClusterOps::Replies replies, std::vector<std::string> missing) mutable {
        Json reply;
        if (gather)
          reply = cmd == "list" ? merged_list(self, std::move(local), replies, missing)
                                : merged_stats(self, std::move(local), replies, missing);
        else if (!replies.empty())
          reply = std::move(replies.front().second);
        else
          reply = error_reply("node " + target + " did not answer (is it in the cluster?)");
        if (!reply.is_object())
          reply = error_reply("node " + target + " sent a reply that is not JSON");
        context->loop->post([context, id, line = to_line(reply)] {
          TcpConnection* conn = context->loop->find(id);
          auto it = context->conns.find(id.value());
          if (conn == nullptr || it == context->conns.end()) return;
          it->second.waiting_for_cluster = false;
          conn->send(line);
          pump(*context, *conn, it->second);
        });
      });
  return true;
}

}  // namespace keel::admin
