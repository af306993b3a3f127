// ConnectionSlab: the connections of one loop, in slots addressed by ConnectionId.
// Slots live in fixed-size chunks that are never moved or freed while the loop exists, so any
// thread can check an id's liveness (an atomic per slot) without a lock; only the loop thread
// adds, removes or dereferences connections.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "keel/net/connection_id.h"
#include "keel/net/tcp_connection.h"

namespace keel {

class ConnectionSlab {
 public:
  explicit ConnectionSlab(uint32_t loop_index) : loop_index_(loop_index) {}
  ~ConnectionSlab();

  // Loop thread. Returns an invalid id when every slot is taken.
  ConnectionId add(std::unique_ptr<TcpConnection> connection);
  // Loop thread. Unlinks and returns the connection; its id no longer finds anything.
  std::unique_ptr<TcpConnection> remove(ConnectionId id);
  // Loop thread. The connection is closing: is_live() turns false at once (other threads see a
  // stale id), while find() still reaches it until remove() so its close can be reported.
  void mark_closing(ConnectionId id) noexcept;
  // Loop thread.
  TcpConnection* find(ConnectionId id) const noexcept;
  // Any thread.
  bool is_live(ConnectionId id) const noexcept;
  size_t size() const noexcept { return live_.load(std::memory_order_relaxed); }

  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (uint32_t c = 0; c < chunk_count_; ++c) {
      Chunk* chunk = chunks_[c].load(std::memory_order_relaxed);
      for (auto& slot : chunk->slots)
        if (slot.connection) fn(*slot.connection);
    }
  }

 private:
  static constexpr uint32_t kChunkSlots = 1024;
  static constexpr uint32_t kMaxChunks = ConnectionId::kMaxSlots / kChunkSlots;

  struct Slot {
    // generation << 1 | live
    std::atomic<uint64_t> state{0};
    std::unique_ptr<TcpConnection> connection;
  };
  struct Chunk {
    std::array<Slot, kChunkSlots> slots;
  };
  // The slot id names, if its generation matches (live or closing).
  const Slot* slot_for(ConnectionId id) const noexcept;

  uint32_t loop_index_;
  std::array<std::atomic<Chunk*>, kMaxChunks> chunks_{};
  uint32_t chunk_count_ = 0;
  std::vector<uint32_t> free_;
  std::atomic<size_t> live_{0};
};

}  // namespace keel
