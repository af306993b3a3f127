// /metrics: the Prometheus text exposition format 0.0.4 of every service's counters, the
// services' event-loop turn latency and the process's memory and descriptors. Each series is
// documented in docs/operations.md, "Metrics reference".
// Thread safety: metrics_text() from a thread that is not one of the engines' own.
#pragma once

#include <string>

#include "services/http/api.h"

namespace keel::http {

std::string metrics_text(const Api& api);

}  // namespace keel::http
