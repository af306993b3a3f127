#include "keel/net/loop_pool.h"

#include <latch>

#include "keel/error.h"

namespace keel {

LoopPool::LoopPool(size_t threads) {
  if (threads == 0 || threads > ConnectionId::kMaxLoops)
    throw Error("loop pool: thread count must be 1 to " + std::to_string(ConnectionId::kMaxLoops));
  loops_.reserve(threads);
  for (size_t i = 0; i < threads; ++i)
    loops_.push_back(std::make_unique<EventLoop>(static_cast<uint32_t>(i)));
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

bool LoopPool::shutdown(ConnectionId id) {
  EventLoop* loop = loop_for(id);
  return loop && loop->shutdown(id);
}

bool LoopPool::close(ConnectionId id, std::string_view reason) {
  EventLoop* loop = loop_for(id);
  return loop && loop->close(id, reason);
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
