// --workers for keel serve / echo: what serve.cc needs to run as a prefork supervisor
// (engine/workers.h) or as one of its workers (engine/worker_process.h).
// Thread safety: free functions for the main thread.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "keel/engine/engine.h"

namespace keel::cli {

// A worker's place: which of the command's services it runs, in which supervisor slot. The
// supervisor passes it as the hidden --worker SERVICE:SLOT.
struct WorkerRole {
  size_t service = 0;
  size_t slot = 0;
};
inline constexpr const char* kWorkerFlag = "--worker";
// "" -> nullopt; throws Error on anything but SERVICE:SLOT.
std::optional<WorkerRole> parse_worker_role(const std::string& text);

// Throws Error unless every service may run in several processes at once (each worker has its
// own copy of the service).
void check_workers_fit(const std::vector<const Service*>& services);

// The supervisor's engine for service number `index` of this command: `workers` processes
// re-running this very command line with --worker index:slot appended.
std::unique_ptr<Engine> make_workers_engine(size_t index, size_t workers,
                                            std::vector<Endpoint> listen, Service& service);

// The worker's log lines say which worker wrote them.
void label_worker_logs(const WorkerRole& role);

}  // namespace keel::cli
