// ThreadsEngine: drives a Service with one thread per connection. Each connection thread polls
// its socket and an eventfd (how other threads wake it) and runs every callback of its
// connection; one control thread accepts on all listeners and joins finished connection threads.
// Blocking inside a callback stalls only that connection, which is what this model is for.
// Thread safety: start(), stop_accepting(), drain() and stop() from the owning thread (not a
// connection thread); the Server verbs, stats(), connection_count() and visit() from any thread;
// start_timer / cancel_timer only on the connection's own thread (see keel/service.h).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "keel/engine/engine.h"
#include "keel/net/socket.h"
#include "keel/net/tcp_server.h"

namespace keel {

namespace detail {
class ThreadConnection;
struct ConnectionHost;
}  // namespace detail

struct ThreadsOptions {
  std::vector<Endpoint> listen;
  SocketOptions socket;
  // 0 = no cap. Over the cap, new connections are accepted and closed at once.
  size_t max_connections = 0;
  // 0 = no cap. As ServerOptions::max_connections_per_ip.
  size_t max_connections_per_ip = 0;
  // Told of every refused connection, on the thread that refused it (a rate-limited log).
  std::function<void(Refusal)> on_refused;
  size_t high_water_bytes = 1 << 20;
  // How long accepting pauses after EMFILE/ENFILE or another resource failure.
  std::chrono::milliseconds accept_backoff{100};
  // As ServerOptions::fd_headroom.
  size_t fd_headroom = 0;
  // TLS, PROXY header: what each connection's bytes pass through (default: plain).
  StreamOptions stream;
  // Idle and half-close deadlines of every connection (default: none).
  ConnectionTimeouts timeouts;

  // The same settings as a reactor's (listener_per_loop has no meaning here).
  static ThreadsOptions from(const ServerOptions& server);
};

class ThreadsEngine final : public Engine {
 public:
  // How long a slow consumer (Overflow::disconnect) gets to read its reason line (as
  // ReactorEngine::kEvictGrace).
  static constexpr std::chrono::milliseconds kEvictGrace{2000};

  // The service must outlive the engine.
  ThreadsEngine(ThreadsOptions options, Service& service);
  ~ThreadsEngine() override;
  ThreadsEngine(const ThreadsEngine&) = delete;
  ThreadsEngine& operator=(const ThreadsEngine&) = delete;

  const char* model() const noexcept override { return "threads"; }
  Service& service() noexcept override { return service_; }
  void start() override;
  const std::vector<Endpoint>& endpoints() const noexcept override { return bound_; }
  void stop_accepting() override;
  size_t drain(std::chrono::milliseconds timeout) override;
  void stop() override;
  EngineStats stats() const override;
  size_t connection_count() const noexcept override {
    return active_.load(std::memory_order_relaxed);
  }
  void visit(const std::function<void(const ClientSnapshot&)>& fn) override;

  bool send(ConnectionId id, std::string_view bytes) override;
  bool send_file(ConnectionId id, FileRegion region) override;
  bool shutdown(ConnectionId id) override;
  bool close(ConnectionId id, std::string_view reason) override;
  size_t send_many(const std::vector<ConnectionId>& ids, std::string_view bytes) override;
  bool close_gracefully(ConnectionId id, std::string_view last_line, std::string_view reason,
                        std::chrono::milliseconds grace) override;
  bool pause_reading(ConnectionId id) override;
  bool resume_reading(ConnectionId id) override;
  TimerId start_timer(ConnectionId id, std::chrono::milliseconds delay, TimerTask fn) override;
  void cancel_timer(ConnectionId id, TimerId timer) override;
  bool can_tap() const noexcept override { return true; }
  bool set_tap(ConnectionId id, std::unique_ptr<ConnectionTap> tap) override;
  bool clear_tap(ConnectionId id, const ConnectionTap* tap) override;

 private:
  struct Entry {
    std::shared_ptr<detail::ThreadConnection> connection;
    std::jthread thread;
  };

  std::shared_ptr<detail::ThreadConnection> find(ConnectionId id) const;
  std::vector<std::shared_ptr<detail::ThreadConnection>> live_connections() const;
  // The control thread: accepts while listening, joins finished connection threads always.
  void control_loop();
  // 0, or the errno (EMFILE, ENOBUFS, ...) for which accepting should pause a while.
  // reserve_fd: a spare descriptor, given up on EMFILE to accept-and-close a waiting client.
  int accept_from(int listener_fd, int& reserve_fd);
  int on_accepted(Socket socket, const Endpoint& peer);
  // Counts and reports a refused connection.
  void refused(Refusal reason);
  void connection_finished(ConnectionId id);
  void reap_finished();
  void wake_control();
  // Graceful (no deadline) or forced close of every live connection.
  void close_all(bool graceful, std::string_view reason);
  bool wait_for_no_connections(std::chrono::milliseconds timeout);

  Service& service_;
  ThreadsOptions options_;
  std::unique_ptr<detail::ConnectionHost> host_;  // what connection threads report to
  std::vector<Endpoint> bound_;

  // Connections by slot, and the threads that finished but are not joined yet.
  mutable std::shared_mutex registry_mutex_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_slots_;
  std::vector<std::jthread> finished_;

  // The control thread and what the owner asks of it.
  std::jthread control_;
  std::vector<Socket> listeners_;  // the control thread's once started
  int control_wake_fd_ = -1;
  std::mutex control_mutex_;
  std::condition_variable control_cv_;
  bool accept_wanted_ = true;  // guarded by control_mutex_
  bool listening_ = false;     // guarded by control_mutex_
  bool stop_wanted_ = false;   // guarded by control_mutex_

  std::atomic<size_t> active_{0};
  std::mutex idle_mutex_;
  std::condition_variable idle_cv_;
  std::atomic<uint64_t> threads_{0};  // connection threads started and not joined yet
  std::atomic<uint64_t> accepted_{0};
  std::unique_ptr<PerAddressLimit> per_address_;  // null: no per-address cap
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> rejected_per_ip_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<uint64_t> fd_exhaustion_{0};
  int descriptor_ceiling_ = 0;  // set by start(): accepted descriptors from here on are shed
  std::atomic<uint64_t> open_failures_{0};
  std::array<std::atomic<uint64_t>, CloseReason::kKinds> closed_{};
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace keel
