// What the server subcommands (serve, echo, chat, exec) share: the admin endpoint from its
// flags, and stop-signal handling.
// Thread safety: call from the main thread before any other thread starts.
#pragma once

#include <signal.h>

#include <optional>
#include <string>

#include "admin/admin_server.h"

namespace keel::cli {

// --admin EP|default|none and --admin-token-file F as AdminOptions; nullopt for "none".
// Throws Error for an unparsable endpoint or an unreadable or empty token file.
std::optional<AdminOptions> admin_options(const std::string& admin, const std::string& token_file);

// Blocks SIGINT and SIGTERM in this thread and every thread started after, so a sigwait() on
// the returned set is the only place they are handled.
sigset_t block_stop_signals();

}  // namespace keel::cli
