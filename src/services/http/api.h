// What the HTTP endpoint's routes answer about and with: the services (through the same admin
// commands as `keel ctl`), the token of state-changing requests, readiness, and the loops whose
// turn latency /metrics reports. Routes: docs/protocols.md, "HTTP API".
// Thread safety: built before the HTTP service starts; phase is set from any thread, everything
// else is read on the HTTP loop only.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_commands.h"
#include "services/http/router.h"

namespace keel {
class EventLoop;
}

namespace keel::http {

using Json = admin::Json;

enum class Phase { starting, ready, draining };

struct Api {
  admin::CommandScope scope;
  // Bearer token of POST /api/send, /api/broadcast, /api/kick (and, off loopback, of every
  // route but /healthz, /readyz and the page).
  std::string token;
  bool token_for_reads = false;
  std::atomic<Phase> phase{Phase::starting};
  // The services' event loops (their turn-latency histograms), in pool order.
  std::vector<const EventLoop*> loops;
  // The HTTP service's own event streams (set by it).
  std::atomic<size_t> streams{0};
  std::atomic<uint64_t> dropped_streams{0};
  size_t event_streams() const noexcept { return streams.load(std::memory_order_relaxed); }
  uint64_t streams_dropped() const noexcept {
    return dropped_streams.load(std::memory_order_relaxed);
  }
};

// Registers /healthz, /readyz, /metrics and /api/*, except /api/events (the service streams it).
void add_api_routes(Router& router, Api& api);

// The payload of one `stats` event on /api/events: a JSON object on one line.
std::string stats_event_json(const Api& api);

// For routes defined beside these (attach_routes.cc): a JSON reply; {"ok":false,"error":...};
// and the check of a state-changing request (same origin, the token, a JSON body): the reply to
// send when it is refused, else nullopt.
Response json_response(int status, const Json& body);
Response json_error(int status, const std::string& message);
std::optional<Response> write_denied(const Api& api, const Request& request);

// 128 random bits (getrandom) as 32 hex digits: the generated token, and attach session ids
// (whoever has one holds the session). nullopt, with errno set, if the kernel gives none.
std::optional<std::string> random_hex128();

// Whether a request may read (true when the endpoint needs no token for reads, or it carries
// the token); the answer to send otherwise is *denied.
bool may_read(const Api& api, const Request& request, Response* denied);

}  // namespace keel::http
