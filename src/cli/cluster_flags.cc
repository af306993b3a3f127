#include "cli/cluster_flags.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "keel/error.h"

namespace keel::cli {

void add_cluster_flags(CLI::App& cmd, ClusterFlags& f, const std::string& shares) {
  cmd.add_option(
         "--redis", f.redis,
         "Cluster: share " + shares +
             " with the other nodes on this Redis: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] "
             "or unix:PATH[?db=DB][&password=PASSWORD]. Default: off (one node)")
      ->type_name("URL");
  cmd.add_option("--redis-password-file", f.redis_password_file,
                 "Cluster: Redis's password is the first line of this file (keeps it out of the "
                 "URL, ps and shell history); the URL then has none")
      ->type_name("PATH");
  cmd.add_option("--node", f.node,
                 "Cluster: this node's name, unique in the cluster (1-64 of A-Z a-z 0-9 _ . : -); "
                 "default HOSTNAME:PID")
      ->type_name("NAME");
}

std::optional<cluster::BackplaneOptions> backplane_options(const ClusterFlags& f,
                                                           const std::string& service) {
  if (f.redis.empty()) {
    if (!f.node.empty()) throw Error("--node names a cluster node: it needs --redis");
    if (!f.redis_password_file.empty())
      throw Error("--redis-password-file is for a cluster node: it needs --redis");
    return std::nullopt;
  }
  cluster::BackplaneOptions o;
  o.redis = cluster::RedisAddress::parse(f.redis);
  if (!f.redis_password_file.empty()) {
    if (!o.redis.password.empty())
      throw Error("--redis " + o.redis.to_string() +
                  " has a password and --redis-password-file gives one: keep one of them");
    std::ifstream in(f.redis_password_file);
    std::string password;
    if (!in || !std::getline(in, password) || password.empty())
      throw Error("redis password file " + f.redis_password_file +
                  ": missing, unreadable or empty");
    if (!password.empty() && password.back() == '\r') password.pop_back();
    o.redis.password = std::move(password);
  }
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
