// AdminServer: the operator's endpoint (`keel ctl`). One JSON request per line in, one JSON
// reply per line out. Lists, sends to, broadcasts to and kicks the clients of every service the
// process runs, and reports stats. By default a Unix socket (mode 0600); on TCP (loopback) every
// request must carry the token from --admin-token-file.
// Protocol: docs/protocols.md, "Admin protocol".
// The endpoint runs on a loop of its own and reaches the services only through keel::Engine, so
// it works the same under every engine (and may wait for a service loop without deadlock).
// Thread safety: start() and stop() from the owning thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_commands.h"
#include "keel/engine/engine.h"
#include "keel/net/endpoint.h"

namespace keel {

struct AdminOptions {
  Endpoint endpoint;
  std::optional<std::string> token;  // required for TCP endpoints
  size_t max_request_bytes = 64 * 1024;
};

class AdminServer {
 public:
  // engines: every service the process runs, in the order `ctl list` shows them. They outlive
  // the admin server.
  AdminServer(AdminOptions options, std::vector<Engine*> engines);
  ~AdminServer();

  // Binds (throws Error); a Unix socket is created with mode 0600. A TCP endpoint without a
  // token is refused (throws Error).
  void start();
  void stop();
  // Before start(), on a cluster node: how requests reach the other nodes.
  void set_cluster(admin::ClusterOps ops);
  const Endpoint& endpoint() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The default admin endpoint: unix:/run/keel/admin.sock for root (creating /run/keel), else
// unix:<working directory>/keel-admin.sock.
std::string default_admin_endpoint();

}  // namespace keel
