// WorkerProcess: the worker's side of --workers (engine/workers.h). Attaches to the table the
// supervisor left on kWorkerSlotsFd, ties this process's life to the supervisor's, and once the
// worker serves, copies its engines' counters into its slot every 200 ms for `keel ctl stats`.
// Thread safety: construct before any thread starts (it sets PR_SET_PDEATHSIG); then one owner.
#pragma once

#include <cstddef>
#include <stop_token>
#include <thread>
#include <vector>

#include "engine/worker_slots.h"
#include "keel/engine/engine.h"

namespace keel {

class WorkerProcess {
 public:
  // Throws Error when this process was not started by a supervisor or the supervisor is gone.
  explicit WorkerProcess(size_t slot);
  ~WorkerProcess();  // stops publishing (call before the engines go)

  size_t slot() const noexcept { return slot_; }
  // The endpoints to listen on, in the order the supervisor was given them, ports resolved.
  std::vector<Endpoint> endpoints() const { return slots_.endpoints(); }
  // Every engine listens: tells the supervisor so and starts publishing their stats. The
  // engines must outlive this object.
  void serving(std::vector<Engine*> engines);

 private:
  void publish();

  WorkerSlots slots_;
  size_t slot_;
  std::vector<Engine*> engines_;
  std::jthread publisher_;
};

}  // namespace keel
