// The one table of config keys: each mirrors one long flag of keel serve/echo/chat/hub/files. A new
// flag of those commands needs a row here and a line in docs/operations.md ("Configuration file");
// tests/unit/config_file_test.cc fails until both exist.
#include "cli/config_file.h"

namespace keel::cli {

namespace {

using enum ConfigKind;

constexpr ConfigKey kKeys[] = {
    {"server", "model", "--model", string},
    {"server", "threads", "--threads", integer},
    {"server", "workers", "--workers", integer},
    {"server", "reuse-port", "--reuse-port", boolean},
    {"server", "io", "--io", string},
    {"limits", "max-connections", "--max-connections", integer},
    {"limits", "max-connections-per-ip", "--max-connections-per-ip", integer},
    {"timeouts", "drain", "--drain-timeout", number},
    {"timeouts", "idle", "--idle-timeout", number},
    {"timeouts", "half-close", "--half-close-timeout", number},
    {"timeouts", "keepalive", "--keepalive", string},
    {"admin", "endpoint", "--admin", string},
    {"admin", "token-file", "--admin-token-file", string},
    {"http", "endpoint", "--http", string},
    {"http", "token-file", "--http-token-file", string},
    {"tls", "cert", "--tls-cert", string},
    {"tls", "key", "--tls-key", string},
    {"tls", "handshake-timeout", "--tls-handshake-timeout", number},
    {"proxy", "enabled", "--proxy-protocol", boolean},
    {"proxy", "allow", "--proxy-allow", strings},
    {"echo", "listen", "--echo", strings, "serve"},
    {"echo", "listen", "--listen", strings, "echo"},
    {"echo", "high-water", "--high-water", integer},
    {"chat", "listen", "--chat", strings, "serve"},
    {"chat", "listen", "--listen", strings, "chat"},
    {"chat", "framing", "--framing", string, "serve"},
    {"chat", "framing", "--framing", string, "chat"},
    {"chat", "max-line", "--max-line", integer},
    {"chat", "max-queued-bytes", "--max-queued-bytes", integer},
    {"chat", "max-input-rate", "--max-input-rate", string},
    {"cluster", "redis", "--redis", string},
    {"cluster", "redis_password_file", "--redis-password-file", string},
    {"cluster", "node", "--node", string},
    {"hub", "listen", "--hub", strings, "serve"},
    {"hub", "listen", "--listen", strings, "hub"},
    {"hub", "framing", "--hub-framing", string, "serve"},
    {"hub", "framing", "--framing", string, "hub"},
    {"hub", "binary", "--binary", boolean, "hub"},
    {"hub", "max-held-bytes", "--max-held-bytes", integer},
    {"files", "listen", "--listen", strings, "files"},
    {"files", "root", "--root", string},
    {"files", "writable", "--writable", boolean},
    {"files", "max-file-bytes", "--max-file-bytes", string},
    {"files", "max-transfers", "--max-transfers", integer},
    {"files", "hash-threads", "--hash-threads", integer},
};

}  // namespace

std::span<const ConfigKey> config_keys() {
  return kKeys;
}

}  // namespace keel::cli
