// ConnectionId: how anything outside a connection's own callbacks names it, and how operators
// name clients (`keel ctl send ID ...`). 64 bits: generation (32) | slot (24) | loop index (8).
// A stale id (its connection closed, the slot reused) never matches: using one is a no-op.
// Thread safety: a value type.
#pragma once

#include <cstdint>
#include <functional>

namespace keel {

class ConnectionId {
 public:
  static constexpr uint32_t kMaxLoops = 1u << 8;
  static constexpr uint32_t kMaxSlots = 1u << 24;

  constexpr ConnectionId() = default;
  constexpr ConnectionId(uint32_t loop, uint32_t slot, uint32_t generation)
      : value_((uint64_t{generation} << 32) | (uint64_t{slot & (kMaxSlots - 1)} << 8) |
               (loop & (kMaxLoops - 1))) {}
  static constexpr ConnectionId from_value(uint64_t value) {
    ConnectionId id;
    id.value_ = value;
    return id;
  }

  constexpr uint32_t loop() const { return static_cast<uint32_t>(value_ & 0xff); }
  constexpr uint32_t slot() const { return static_cast<uint32_t>((value_ >> 8) & 0xffffff); }
  constexpr uint32_t generation() const { return static_cast<uint32_t>(value_ >> 32); }
  constexpr uint64_t value() const { return value_; }
  constexpr bool valid() const { return value_ != kInvalid; }

  friend constexpr bool operator==(ConnectionId a, ConnectionId b) { return a.value_ == b.value_; }

 private:
  static constexpr uint64_t kInvalid = ~uint64_t{0};
  uint64_t value_ = kInvalid;
};

}  // namespace keel

template <>
struct std::hash<keel::ConnectionId> {
  size_t operator()(keel::ConnectionId id) const noexcept {
    return std::hash<uint64_t>{}(id.value());
  }
};
