#include "cli/cluster_flags.h"

#include <unistd.h>

#include <algorithm>

#include "keel/error.h"

namespace keel::cli {

void add_cluster_flags(CLI::App& cmd, ClusterFlags& f, const std::string& shares) {
  cmd.add_option(
         "--redis", f.redis,
         "Cluster: share " + shares +
             " with the other nodes on this Redis: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] "
             "or unix:PATH[?db=DB][&password=PASSWORD]. Default: off (one node)")
      ->type_name("URL");
  cmd.add_option("--node", f.node,
                 "Cluster: this node's name, unique in the cluster (1-64 of A-Z a-z 0-9 _ . : -); "
                 "default HOSTNAME:PID")
      ->type_name("NAME");
}

std::optional<cluster::BackplaneOptions> backplane_options(const ClusterFlags& f,
                                                           const std::string& service) {
  if (f.redis.empty()) {
    if (!f.node.empty()) throw Error("--node names a cluster node: it needs --redis");
    return std::nullopt;
  }
  cluster::BackplaneOptions o;
  o.redis = cluster::RedisAddress::parse(f.redis);
  o.node = f.node;
  if (o.node.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    o.node = std::string(host).substr(0, 40) + ":" + std::to_string(::getpid());
  }
  const bool valid = !o.node.empty() && o.node.size() <= cluster::kMaxNodeNameBytes &&
                     std::all_of(o.node.begin(), o.node.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
                              c == '-';
                     });
  if (!valid) throw Error("--node " + o.node + ": use 1-64 of A-Z a-z 0-9 _ . : -");
  o.prefix = "keel:" + service + ":";
  return o;
}

std::unique_ptr<cluster::Backplane> make_chat_backplane(chat::ChatService& chat,
                                                        cluster::BackplaneOptions options,
                                                        std::chrono::milliseconds node_timeout) {
  auto bp = std::make_unique<cluster::Backplane>(
      std::move(options), [&chat](const cluster::NodeEvent& e) { chat.on_cluster_event(e); },
      [&chat](bool up) { chat.on_cluster_state(up); },
      [&chat](const std::vector<std::string>& names) { chat.on_names_lost(names); });
  chat.join_cluster(*bp);
  // The loop is not running yet: this thread may add its timer.
  bp->loop().run_every(std::chrono::seconds(1),
                       [&chat, node_timeout] { chat.expire_nodes(node_timeout); });
  return bp;
}

std::unique_ptr<cluster::Backplane> make_plain_backplane(cluster::BackplaneOptions options) {
  return std::make_unique<cluster::Backplane>(
      std::move(options), [](const cluster::NodeEvent&) {}, [](bool) {},
      [](const std::vector<std::string>&) {});
}

}  // namespace keel::cli
