// The server flags that bound how long a connection may hold its resources without progress:
// --idle-timeout, --half-close-timeout and --keepalive.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "keel/net/socket.h"
#include "keel/net/tcp_connection.h"

namespace keel::cli {

struct TimeoutFlags {
  double idle_s = 0;        // 0: none
  double half_close_s = 0;  // 0: none
  std::string keepalive = "off";
};

void add_timeout_flags(CLI::App& cmd, TimeoutFlags& f);

struct Keepalive {
  int idle_s = 0;
  int interval_s = 0;
  int count = 0;
};
// "IDLE,INTERVAL,COUNT" (seconds, seconds, probes) or "off" (nullopt). Throws Error naming
// what is wrong.
std::optional<Keepalive> parse_keepalive(const std::string& text);

// Sets the connection deadlines and the sockets' keepalive (with TCP_USER_TIMEOUT, so data
// left unacknowledged is given up on as soon as an unanswered keepalive would be).
void apply_timeout_flags(const TimeoutFlags& f, ConnectionTimeouts& timeouts,
                         SocketOptions& socket);

}  // namespace keel::cli
