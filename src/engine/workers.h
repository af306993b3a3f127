// WorkersEngine: nginx-style prefork (--workers N). This process becomes a supervisor of N worker
// processes; each worker runs its own reactor with its own SO_REUSEPORT listeners on the same
// ports, and the kernel spreads connections over them. Only for services whose connections share
// nothing (Service::connections_independent()), since each worker has its own copy of the service.
//
// The supervisor serves no connection itself: it reserves each port (a bound, never listening
// SO_REUSEPORT socket: it learns the port for port 0 and keeps the port ours while every worker
// is down, yet receives no connections), re-executes this program for each worker (see
// workers.cc for why exec and not a bare fork), restarts a worker that dies (with back-off when
// it keeps dying quickly) and drains them all on stop. Workers publish their counters through a
// shared table (engine/worker_slots.h), which stats() sums and lists per worker.
// Thread safety: as keel::Engine. The Server verbs always return false (connections live in the
// workers, which the admin endpoint cannot reach by id).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/worker_slots.h"
#include "keel/engine/engine.h"
#include "keel/net/socket.h"

namespace keel {

struct WorkersOptions {
  size_t workers = 2;
  // TCP endpoints only (a Unix socket cannot be shared with SO_REUSEPORT).
  std::vector<Endpoint> listen;
  // argv of worker `slot`, run as executable with the table on kWorkerSlotsFd.
  std::function<std::vector<std::string>(size_t slot)> worker_argv;
  // /proc/self/exe: workers (and restarted ones) run exactly this binary, even after an upgrade
  // replaced the file on disk.
  std::string executable = "/proc/self/exe";
  // How long start() waits for every worker to listen.
  std::chrono::milliseconds start_timeout{15000};
  // Past the drain timeout, how long workers get to exit before SIGKILL.
  std::chrono::milliseconds kill_margin{3000};
};

class WorkersEngine final : public Engine {
 public:
  // service: the supervisor's own instance, for its name; each worker builds its own.
  WorkersEngine(WorkersOptions options, Service& service);
  ~WorkersEngine() override;

  const char* model() const noexcept override { return "workers"; }
  Service& service() noexcept override { return service_; }

  // Reserves the ports, starts the workers and waits until all listen. Throws Error (a worker
  // that fails to start has printed its own reason to stderr).
  void start() override;
  const std::vector<Endpoint>& endpoints() const noexcept override { return bound_; }
  // SIGTERM to every worker (each stops accepting and drains its clients); no more restarts.
  void stop_accepting() override;
  // stop_accepting(), wait up to timeout + kill_margin for the workers to exit, SIGKILL the
  // rest. Returns the connections the killed workers still had.
  size_t drain(std::chrono::milliseconds timeout) override;
  // SIGKILL every worker and reap them. Idempotent.
  void stop() override;

  EngineStats stats() const override;
  size_t connection_count() const noexcept override;
  void visit(const std::function<void(const ClientSnapshot&)>&) override {}

  bool send(ConnectionId, std::string_view) override { return false; }
  bool shutdown(ConnectionId) override { return false; }
  bool close(ConnectionId, std::string_view) override { return false; }
  bool close_gracefully(ConnectionId, std::string_view, std::string_view,
                        std::chrono::milliseconds) override {
    return false;
  }
  bool pause_reading(ConnectionId) override { return false; }
  bool resume_reading(ConnectionId) override { return false; }
  TimerId start_timer(ConnectionId, std::chrono::milliseconds, TimerTask) override { return 0; }
  void cancel_timer(ConnectionId, TimerId) override {}

 private:
  using Clock = std::chrono::steady_clock;
  struct Child;

  void supervise();  // the supervisor thread: spawns, reaps, restarts, stops
  bool spawn(size_t slot);
  // Collects slot's exited worker and schedules its restart; returns how it ended ("" if it
  // has not).
  std::string reap(size_t slot, Clock::time_point now);
  void request_stop(Clock::time_point kill_at);
  void wake();
  void finish();  // joins the supervisor thread

  WorkersOptions options_;
  Service& service_;
  std::vector<Socket> reserved_;  // one bound, non-listening socket per endpoint
  std::vector<Endpoint> bound_;
  WorkerSlots slots_;
  std::vector<Child> children_;  // by slot; the supervisor thread's alone once it runs
  int wake_fd_ = -1;
  std::jthread thread_;

  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> kill_at_ns_{0};         // Clock ticks; SIGKILL what is left from then on
  std::atomic<uint64_t> retired_accepted_{0};  // accepted by workers that have exited
  std::atomic<uint64_t> killed_active_{0};     // connections of workers killed by stop

  // start() waits here for the first generation of workers.
  std::mutex start_mutex_;
  std::condition_variable start_cv_;
  std::string start_error_;
  bool start_done_ = false;
};

}  // namespace keel
