// WorkerSlots: the table a prefork supervisor (--workers) shares with its worker processes. It
// lives in a memfd mapped MAP_SHARED: the supervisor creates it, each worker gets it on
// kWorkerSlotsFd across exec. The header carries what a worker needs to join the supervisor
// (its pid and the endpoints with port 0 already resolved); one slot per worker carries that
// worker's counters, refreshed by the worker and read by the supervisor's `keel ctl stats`.
// Thread safety: any thread of any process sharing the table; slot fields are lock-free atomics
// (address-free, so valid across processes); the header is written once before any worker runs.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "keel/net/endpoint.h"

namespace keel {

// The descriptor number a worker finds the table on (placed there by the supervisor's spawn).
inline constexpr int kWorkerSlotsFd = 3;

struct WorkerSlot {
  // Written by the supervisor.
  std::atomic<uint64_t> pid{0};  // the worker process now in this slot, 0 while none
  std::atomic<uint64_t> restarts{0};
  // Written by the worker.
  std::atomic<uint64_t> ready_pid{0};  // the worker's pid once all its listeners are up
  std::atomic<uint64_t> accepted{0};   // by this worker process (starts at 0 on a restart)
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> rejected_over_cap{0};
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<uint64_t> fd_exhaustion{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "slots are shared across processes");

class WorkerSlots {
 public:
  // Supervisor: a new table for count workers serving endpoints (every port resolved). The
  // memfd is close-on-exec and above the low descriptor numbers, so spawn can dup2 it onto
  // kWorkerSlotsFd. Throws Error.
  static WorkerSlots create(size_t count, const std::vector<Endpoint>& endpoints);
  // Worker: maps the table found on fd and checks it. Throws Error.
  static WorkerSlots attach(int fd);

  WorkerSlots() = default;
  WorkerSlots(WorkerSlots&& other) noexcept;
  WorkerSlots& operator=(WorkerSlots&& other) noexcept;
  WorkerSlots(const WorkerSlots&) = delete;
  WorkerSlots& operator=(const WorkerSlots&) = delete;
  ~WorkerSlots();

  int fd() const noexcept { return fd_; }
  size_t size() const noexcept;
  WorkerSlot& slot(size_t index) const;
  pid_t supervisor_pid() const noexcept;
  std::vector<Endpoint> endpoints() const;

 private:
  struct Header;
  static size_t slots_offset() noexcept;
  Header* header_ = nullptr;
  size_t mapped_bytes_ = 0;
  int fd_ = -1;
};

// Worker: ties this process's life to the supervisor's (SIGTERM, i.e. a drain, when the
// supervisor dies; exits at once if it already has). Call before starting any thread.
void bind_worker_to_supervisor(const WorkerSlots& slots);

}  // namespace keel
