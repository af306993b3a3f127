// TimerWheel: a hashed timing wheel of connection deadlines, one per EventLoop. Time is counted
// in ticks; an entry due at tick T sits in slot T % slots and fires when the wheel has advanced
// to T (an entry more than one rotation away waits in its slot for later rotations).
// Arming is a push into a slot: O(1). Cancelling and postponing cost nothing here: the owner
// remembers which entry is its live one (its due tick) and ignores the others when they fire,
// so refreshing an idle deadline on every read is a store into the connection, not a wheel
// operation. Stale entries leave when their slot comes round.
// Thread safety: none; the owning loop's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "keel/net/connection_id.h"

namespace keel {

class TimerWheel {
 public:
  using Tick = uint32_t;
  struct Entry {
    ConnectionId id;
    Tick due;
  };

  // slots: a power of two.
  explicit TimerWheel(size_t slots = 1024) : slots_(slots), mask_(slots - 1) {}

  // Ticks up to and including this one have been processed.
  Tick processed() const noexcept { return processed_; }
  // Starts the wheel's clock: nothing at or before tick has to fire. Only while empty.
  void reset(Tick tick) noexcept {
    if (size_ == 0) processed_ = tick;
  }
  // Entries in the wheel, stale ones included.
  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Adds an entry for id due at tick due. A tick already processed fires on the next advance.
  void schedule(ConnectionId id, Tick due) {
    if (due <= processed_) due = processed_ + 1;
    slots_[due & mask_].push_back({id, due});
    ++size_;
  }

  // Advances to tick now, calling fire(id, due) once for every entry due at or before it, and
  // removing those. fire may schedule more (due later than now: they wait for a later advance).
  template <class Fire>
  void advance(Tick now, Fire&& fire) {
    if (now <= processed_) return;
    // Past one rotation every slot is visited once; each keeps what is not due yet.
    const Tick span = now - processed_;
    const Tick first = span > mask_ ? now - mask_ : processed_ + 1;
    processed_ = now;
    for (Tick t = first;; ++t) {
      std::vector<Entry>& slot = slots_[t & mask_];
      if (!slot.empty()) {
        // fire() may schedule into this very slot: take its entries out first.
        std::vector<Entry> entries;
        entries.swap(slot);
        for (const Entry& e : entries) {
          if (e.due <= now) {
            --size_;
            fire(e.id, e.due);
          } else {
            slot.push_back(e);  // a later rotation
          }
        }
        // Keep the slot's memory for the next rotation (the common case re-arms into it).
        if (slot.empty()) {
          entries.clear();
          slot.swap(entries);
        }
      }
      if (t == now) break;
    }
  }

 private:
  std::vector<std::vector<Entry>> slots_;
  const Tick mask_;
  Tick processed_ = 0;
  size_t size_ = 0;
};

}  // namespace keel
