// LoopPool: N EventLoops, each on its own std::jthread.
// Thread safety: start() and stop() from the owning thread (never from a pool loop); loop(),
// next_loop(), size() and the by-id send/shutdown/close from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "keel/net/connection_id.h"
#include "keel/net/event_loop.h"

namespace keel {

class LoopPool {
 public:
  // threads >= 1 and <= ConnectionId::kMaxLoops. Loops exist (and accept posts) from here on.
  // io: how they wait (io_backend.h).
  explicit LoopPool(size_t threads, IoBackend io = default_io_backend());
  ~LoopPool();
  LoopPool(const LoopPool&) = delete;
  LoopPool& operator=(const LoopPool&) = delete;

  void start();
  // Quits every loop and joins the threads. Idempotent.
  void stop();
  bool running() const noexcept { return running_; }

  size_t size() const noexcept { return loops_.size(); }
  EventLoop& loop(size_t index) { return *loops_.at(index); }
  // Round-robin choice for the next connection.
  EventLoop& next_loop() noexcept;
  EventLoop* loop_for(ConnectionId id) noexcept;

  bool send(ConnectionId id, std::string_view bytes);
  bool send_file(ConnectionId id, FileRegion region);
  bool shutdown(ConnectionId id);
  bool close(ConnectionId id, std::string_view reason);
  // The same bytes to many connections: one shared copy, one post per loop (direct sends on the
  // calling loop). Returns how many ids were live. Per connection, order with send() is kept.
  size_t send_many(const std::vector<ConnectionId>& ids, std::string_view bytes);

  // Runs fn on every loop thread and waits until all have run it. Not from a pool loop.
  // Before start() (or after stop()) fn runs right here, as nothing else touches the loops.
  void run_on_all_and_wait(const std::function<void(EventLoop&)>& fn);
  // The same for one loop of this pool.
  void run_on_and_wait(EventLoop& loop, const std::function<void()>& fn);

 private:
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::jthread> threads_;
  std::atomic<size_t> next_{0};
  bool running_ = false;
};

}  // namespace keel
