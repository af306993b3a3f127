#include "keel/net/loop_pool.h"

#include <latch>

#include "keel/error.h"
#include "keel/net/tcp_connection.h"

namespace keel {

LoopPool::LoopPool(size_t threads, IoBackend io) {
  if (threads == 0 || threads > ConnectionId::kMaxLoops)
    throw Error("loop pool: thread count must be 1 to " + std::to_string(ConnectionId::kMaxLoops));
  loops_.reserve(threads);
  for (size_t i = 0; i < threads; ++i)
    loops_.push_back(std::make_unique<EventLoop>(static_cast<uint32_t>(i), io));
}

LoopPool::~LoopPool() {
  stop();
}

void LoopPool::start() {
  if (running_) return;
  running_ = true;
  for (auto& loop : loops_) threads_.emplace_back([l = loop.get()] { l->run(); });
}

void LoopPool::stop() {
  if (!running_) return;
  for (auto& loop : loops_) loop->quit();
  threads_.clear();  // jthread joins
  running_ = false;
}

EventLoop& LoopPool::next_loop() noexcept {
  return *loops_[next_.fetch_add(1, std::memory_order_relaxed) % loops_.size()];
}

EventLoop* LoopPool::loop_for(ConnectionId id) noexcept {
  if (!id.valid() || id.loop() >= loops_.size()) return nullptr;
  return loops_[id.loop()].get();
}

bool LoopPool::send(ConnectionId id, std::string_view bytes) {
  EventLoop* loop = loop_for(id);
  return loop && loop->send(id, bytes);
}

bool LoopPool::send_file(ConnectionId id, FileRegion region) {
  EventLoop* loop = loop_for(id);
  return loop && loop->send_file(id, std::move(region));
}

bool LoopPool::shutdown(ConnectionId id) {
  EventLoop* loop = loop_for(id);
  return loop && loop->shutdown(id);
}

bool LoopPool::close(ConnectionId id, std::string_view reason) {
  EventLoop* loop = loop_for(id);
  return loop && loop->close(id, reason);
}

size_t LoopPool::send_many(const std::vector<ConnectionId>& ids, std::string_view bytes) {
  std::shared_ptr<const std::string> payload;
  std::vector<std::vector<ConnectionId>> per_loop(loops_.size());
  size_t live = 0;
  EventLoop* here = EventLoop::current();
  for (ConnectionId id : ids) {
    EventLoop* loop = loop_for(id);
    if (!loop || !loop->is_live(id)) continue;
    ++live;
    if (loop == here) {
      loop->send(id, bytes);  // direct, like send() from this loop
    } else {
      per_loop[id.loop()].push_back(id);
    }
  }
  for (size_t i = 0; i < per_loop.size(); ++i) {
    if (per_loop[i].empty()) continue;
    if (!payload) payload = std::make_shared<const std::string>(bytes);
    EventLoop* loop = loops_[i].get();
    loop->post([loop, targets = std::move(per_loop[i]), payload] {
      for (ConnectionId id : targets)
        if (TcpConnection* c = loop->find(id)) c->send(*payload);
    });
  }
  return live;
}

void LoopPool::run_on_and_wait(EventLoop& loop, const std::function<void()>& fn) {
  if (!running_) {
    fn();
    return;
  }
  std::latch done(1);
  loop.post([&] {
    fn();
    done.count_down();
  });
  done.wait();
}

void LoopPool::run_on_all_and_wait(const std::function<void(EventLoop&)>& fn) {
  if (!running_) {
    for (auto& loop : loops_) fn(*loop);
    return;
  }
  std::latch done(static_cast<std::ptrdiff_t>(loops_.size()));
  for (auto& loop : loops_)
    loop->post([&fn, &done, l = loop.get()] {
      fn(*l);
      done.count_down();
    });
  done.wait();
}

}  // namespace keel
