#include "connection_slab.h"

namespace keel {

ConnectionSlab::~ConnectionSlab() {
  for (uint32_t c = 0; c < chunk_count_; ++c) delete chunks_[c].load(std::memory_order_relaxed);
}

ConnectionId ConnectionSlab::add(std::unique_ptr<TcpConnection> connection) {
  if (free_.empty()) {
    if (chunk_count_ == kMaxChunks) return {};
    // Push in reverse so the lowest slot numbers are used first.
    chunks_[chunk_count_].store(new Chunk, std::memory_order_release);
    for (uint32_t i = kChunkSlots; i-- > 0;) free_.push_back(chunk_count_ * kChunkSlots + i);
    ++chunk_count_;
  }
  uint32_t index = free_.back();
  if (index == ConnectionId::kMaxSlots - 1 && loop_index_ == ConnectionId::kMaxLoops - 1) {
    // Loop 255's last slot could spell the invalid id at generation 2^32-1: never hand it out.
    return {};
  }
  free_.pop_back();
  Slot& slot =
      chunks_[index / kChunkSlots].load(std::memory_order_relaxed)->slots[index % kChunkSlots];
  uint64_t generation = slot.state.load(std::memory_order_relaxed) >> 1;
  slot.connection = std::move(connection);
  slot.state.store((generation << 1) | 1, std::memory_order_release);
  live_.fetch_add(1, std::memory_order_relaxed);
  return ConnectionId(loop_index_, index, static_cast<uint32_t>(generation));
}

const ConnectionSlab::Slot* ConnectionSlab::slot_for(ConnectionId id) const noexcept {
  if (!id.valid() || id.loop() != loop_index_) return nullptr;
  uint32_t chunk = id.slot() / kChunkSlots;
  if (chunk >= kMaxChunks) return nullptr;
  const Chunk* c = chunks_[chunk].load(std::memory_order_acquire);
  if (!c) return nullptr;
  const Slot& slot = c->slots[id.slot() % kChunkSlots];
  if ((slot.state.load(std::memory_order_acquire) >> 1) != id.generation()) return nullptr;
  return &slot;
}

bool ConnectionSlab::is_live(ConnectionId id) const noexcept {
  const Slot* slot = slot_for(id);
  return slot && (slot->state.load(std::memory_order_acquire) & 1);
}

void ConnectionSlab::mark_closing(ConnectionId id) noexcept {
  Slot* slot = const_cast<Slot*>(slot_for(id));
  if (!slot || !(slot->state.load(std::memory_order_relaxed) & 1)) return;
  slot->state.store(uint64_t{id.generation()} << 1, std::memory_order_release);
  live_.fetch_sub(1, std::memory_order_relaxed);
}

TcpConnection* ConnectionSlab::find(ConnectionId id) const noexcept {
  const Slot* slot = slot_for(id);
  return slot ? slot->connection.get() : nullptr;
}

std::unique_ptr<TcpConnection> ConnectionSlab::remove(ConnectionId id) {
  Slot* slot = const_cast<Slot*>(slot_for(id));
  if (!slot || !slot->connection) return nullptr;
  if (slot->state.load(std::memory_order_relaxed) & 1)
    live_.fetch_sub(1, std::memory_order_relaxed);
  // Next generation, not live: the old id finds nothing from here on. Generations wrap at 2^32.
  uint64_t next = (uint64_t{id.generation()} + 1) & 0xffffffff;
  slot->state.store(next << 1, std::memory_order_release);
  free_.push_back(id.slot());
  return std::move(slot->connection);
}

}  // namespace keel
