// What the server subcommands (serve, echo, chat, exec) share: the admin endpoint from its
// flags, stop-signal handling, and the log of refused connections.
// Thread safety: call from the main thread before any other thread starts (RefusalLog: any).
#pragma once

#include <signal.h>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "admin/admin_server.h"
#include "keel/net/admission.h"
#include "keel/rate_limited_log.h"

namespace keel::cli {

// --admin EP|default|none and --admin-token-file F as AdminOptions; nullopt for "none".
// Throws Error for an unparsable endpoint or an unreadable or empty token file.
std::optional<AdminOptions> admin_options(const std::string& admin, const std::string& token_file);

// Blocks SIGINT and SIGTERM in this thread and every thread started after, so a sigwait() on
// the returned set is the only place they are handled.
sigset_t block_stop_signals();

// Waits for a signal of set (see block_stop_signals), calling every() about once a second
// meanwhile. Returns the signal's number.
int wait_for_signal(const sigset_t& set, const std::function<void()>& every);

// The warnings about one service's refused connections: at most one line a second per reason,
// with a count ("echo: refused 1532 connections in the last 1.0 s: over --max-connections
// (1000)"). Thread safety: refused() and tick() from any thread.
class RefusalLog {
 public:
  RefusalLog(std::string service, size_t max_connections, size_t max_connections_per_ip);
  void refused(Refusal reason) { logs_[static_cast<size_t>(reason)]->add(); }
  // Writes what is pending once its second has passed (force: now, at shutdown).
  void tick(bool force = false);

 private:
  std::array<std::unique_ptr<RateLimitedLog>, 3> logs_;  // by Refusal
};

}  // namespace keel::cli
