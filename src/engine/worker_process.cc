#include "engine/worker_process.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "keel/error.h"

namespace keel {

WorkerProcess::WorkerProcess(size_t slot)
    : slots_(WorkerSlots::attach(kWorkerSlotsFd)), slot_(slot) {
  if (slot >= slots_.size()) throw Error("worker: slot " + std::to_string(slot) + " out of range");
  bind_worker_to_supervisor(slots_);
}

WorkerProcess::~WorkerProcess() {
  if (publisher_.joinable()) {
    publisher_.request_stop();
    publisher_.join();
  }
}

void WorkerProcess::serving(std::vector<Engine*> engines) {
  engines_ = std::move(engines);
  publish();
  slots_.slot(slot_).ready_pid = static_cast<uint64_t>(::getpid());
  // A thread of its own rather than a loop timer: Engine::stats() is not meant to be called from
  // the engine's own threads, and 200 ms of staleness is plenty for an operator's view.
  publisher_ = std::jthread([this](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    while (!stop.stop_requested()) {
      cv.wait_for(lock, stop, std::chrono::milliseconds(200), [] { return false; });
      if (!stop.stop_requested()) publish();
    }
  });
}

void WorkerProcess::publish() {
  EngineStats sum;
  for (Engine* e : engines_) {
    EngineStats s = e->stats();
    sum.accepted += s.accepted;
    sum.active += s.active;
    sum.rejected_over_cap += s.rejected_over_cap;
    sum.accept_errors += s.accept_errors;
    sum.fd_exhaustion += s.fd_exhaustion;
  }
  WorkerSlot& w = slots_.slot(slot_);
  w.accepted = sum.accepted;
  w.active = sum.active;
  w.rejected_over_cap = sum.rejected_over_cap;
  w.accept_errors = sum.accept_errors;
  w.fd_exhaustion = sum.fd_exhaustion;
}

}  // namespace keel
